"""The custom role grants exactly the Compute and Network actions the Azure adapters perform; everything else
they need comes from built-in roles that the templates assign.

infra/rollout-role-actions.json is what Bicep deploys (rollout-role.bicep loads it) and what these tests read.
The adapters' list is shared.adapters.azure.permissions (branch issue-4); until that module is present the
comparisons with it are skipped, the checks on the file and the templates still run.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from types import ModuleType

import pytest

from .bicep import INFRA, MAIN, parse, role_actions

CUSTOM_ROLE_PROVIDERS = ("Microsoft.Compute/", "Microsoft.Network/")

# Built-in roles the templates assign, with the actions (and data actions) that matter here, as Azure defines them.
BUILT_IN_ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "43d0d8ad-25c7-4714-9337-8ba259a9fe05": ("Monitoring Reader", ("*/read",)),
    "73c42c96-874c-492b-b04d-ab87d138a893": ("Log Analytics Reader", (
        "*/read", "Microsoft.OperationalInsights/workspaces/analytics/query/action",
        "Microsoft.OperationalInsights/workspaces/search/action")),
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": ("Storage Table Data Contributor", (
        "Microsoft.Storage/storageAccounts/tableServices/tables/entities/read",
        "Microsoft.Storage/storageAccounts/tableServices/tables/entities/write",
        "Microsoft.Storage/storageAccounts/tableServices/tables/entities/delete",
        "Microsoft.Storage/storageAccounts/tableServices/tables/entities/add/action",
        "Microsoft.Storage/storageAccounts/tableServices/tables/entities/update/action")),
    "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": ("Azure Service Bus Data Sender", ("Microsoft.ServiceBus/*/send/action",)),
}


def _permissions() -> ModuleType:
    return pytest.importorskip(
        "shared.adapters.azure.permissions",
        reason="the Azure adapters (shared/adapters/azure, branch issue-4) are not on this branch yet")


def _assigned_role_ids() -> set[str]:
    """Built-in role definition ids named anywhere in the templates (they are only used to assign roles)."""
    guid = re.compile(r"'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'")
    return {g for path in INFRA.rglob("*.bicep") for g in guid.findall(path.read_text())}


def _covered(action: str, role_ids: set[str]) -> list[str]:
    return [BUILT_IN_ROLES[r][0] for r in sorted(role_ids & set(BUILT_IN_ROLES))
            if any(fnmatchcase(action.lower(), pattern.lower()) for pattern in BUILT_IN_ROLES[r][1])]


def test_role_actions_are_sorted_distinct_and_free_of_wildcards() -> None:
    actions = role_actions()
    assert actions == sorted(set(actions)), "keep rollout-role-actions.json sorted and without repeats"
    assert not [a for a in actions if "*" in a], "a wildcard grants more than the adapters perform"


def test_role_holds_only_compute_and_network_actions() -> None:
    others = [a for a in role_actions() if not a.startswith(CUSTOM_ROLE_PROVIDERS)]
    assert not others, f"grant these with built-in roles, not the custom role: {others}"


def test_role_template_deploys_the_actions_file_and_is_assignable_only_where_it_is_assigned() -> None:
    role_module = parse(INFRA / "modules" / "rollout-role.bicep")
    loaded = role_module["variables"]["actions"]["value"]["function"]
    assert (loaded["type"], loaded["parameters"]["file_path"]) == ("load_json_content", "../rollout-role-actions.json")
    assert loaded["property_name"] == "actions"
    main = MAIN.read_text()
    # assignable at the target resource groups and the shadow pool's; assigned at exactly those: the shadow pool's
    # in Bicep, the targets' by the postprovision hook (outside the deployment, so `azd down` leaves them alone)
    assert "assignableScopes: union(targetIds, [shadowRg.id])" in main
    assert "module shadowAccess 'modules/role-assignment.bicep'" in main and "scope: shadowRg" in main
    outputs = parse(MAIN)["outputs"]
    assert {"SHADOW_ROLLOUT_ROLE_ID", "SHADOW_ROLLOUT_TARGET_RESOURCE_GROUP_IDS",
            "SHADOW_ROLLOUT_IDENTITY_PRINCIPAL_ID"} <= set(outputs)
    grant = (INFRA / "scripts" / "grant-fleet-access.sh").read_text()
    assert 'for scope in $(echo "$SHADOW_ROLLOUT_TARGET_RESOURCE_GROUP_IDS"' in grant
    assert '--role "$SHADOW_ROLLOUT_ROLE_ID" --scope "$scope"' in grant


def test_role_grants_exactly_the_compute_and_network_actions_the_adapters_perform() -> None:
    required = {a for a in _permissions().REQUIRED_ACTIONS if a.startswith(CUSTOM_ROLE_PROVIDERS)}
    granted = set(role_actions())
    assert not required - granted, f"used by the adapters but not granted: {sorted(required - granted)}"
    assert not granted - required, f"granted but not used by the adapters: {sorted(granted - required)}"


def test_adapters_other_actions_come_from_assigned_built_in_roles() -> None:
    perms = _permissions()
    assigned = _assigned_role_ids()
    needed = [a for a in perms.REQUIRED_ACTIONS if not a.startswith(CUSTOM_ROLE_PROVIDERS)]
    needed += list(getattr(perms, "DATA_ACTIONS", ()))
    uncovered = [a for a in needed if not _covered(a, assigned)]
    assert not uncovered, f"no assigned built-in role grants: {uncovered}"


def test_monitoring_reader_is_assigned_at_subscription_scope_for_metrics() -> None:
    """metrics:getBatch is a subscription-level call: a resource-group read role is not enough."""
    resource = parse(MAIN)["resources"]["metricsReader"]
    assert resource["type"] == "Microsoft.Authorization/roleAssignments"
    assert "scope" not in resource["config"], "main.bicep is subscription-scoped: no scope = the subscription"
    assert parse(MAIN)["variables"]["monitoringReader"]["value"] == "43d0d8ad-25c7-4714-9337-8ba259a9fe05"
