"""An existing Event Grid system topic is reused by parameter: Azure allows one system topic per source, so where the
subscription has one the template makes none and the postdeploy hook subscribes on it, with the very filter of the
template's own subscription (the Bicep is parsed as the other infra tests parse it; `az bicep` is not needed)."""

from __future__ import annotations

import json
import re
import shlex

from .bicep import INFRA, MAIN, module_body, parse

HOOK = INFRA / "scripts" / "subscribe-events.sh"
PREDOWN = INFRA / "scripts" / "revoke-fleet-access.sh"
MODULE = INFRA / "modules" / "fleet-events.bicep"


def _subscription() -> dict[str, object]:
    return dict(parse(MODULE)["resources"]["toFunction"]["config"])


def _hook_args() -> dict[str, list[str]]:
    """The `az eventgrid system-topic event-subscription create` call of the hook, as option -> values."""
    text = HOOK.read_text().replace("\\\n", " ")
    line = next(x for x in text.splitlines() if "event-subscription create" in x)
    args: dict[str, list[str]] = {}
    key = ""
    for word in shlex.split(line)[5:]:
        if word.startswith("--"):
            key = word
            args.setdefault(key, [])
            if key == "--advanced-filter":
                args[key].append("")
        elif key == "--advanced-filter":
            args[key][-1] = f"{args[key][-1]} {word}".strip()
        else:
            args[key].append(word)
    return args


def test_the_topic_is_made_only_when_no_existing_one_is_named() -> None:
    main = parse(MAIN)
    assert main["parameters"]["existingSystemTopicId"]["default"] == ""
    condition = str(main["modules"]["fleetEvents"]["config"])
    assert "existingSystemTopicId" in condition and "empty" in condition, "fleetEvents must skip an existing topic"
    mapped = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]["existingSystemTopicId"]
    assert mapped["value"] == "${SHADOW_ROLLOUT_EXISTING_SYSTEM_TOPIC_ID=}"
    outputs = main["outputs"]
    assert {"SHADOW_ROLLOUT_EXISTING_SYSTEM_TOPIC_ID", "SHADOW_ROLLOUT_FUNCTION_APP_ID",
            "SHADOW_ROLLOUT_TARGET_RESOURCE_GROUP_IDS"} <= set(outputs), "the hook reads these from azd's environment"


def test_the_hook_subscribes_on_the_existing_topic_with_the_templates_filter() -> None:
    sub = _subscription()
    props = sub["properties"]
    assert isinstance(props, dict)
    args = _hook_args()
    assert args["--name"] == [sub["name"]]
    assert args["--endpoint-type"] == ["azurefunction"]
    assert args["--endpoint"] == ["$function_id/functions/intake_event_grid"]
    assert props["destination"]["properties"]["resourceId"].endswith("/functions/intake_event_grid")
    assert args["--max-events-per-batch"] == [str(props["destination"]["properties"]["maxEventsPerBatch"])]
    flt = props["filter"]
    assert args["--included-event-types"] == flt["includedEventTypes"]
    assert args["--enable-advanced-filtering-on-arrays"] == [str(flt["enableAdvancedFilteringOnArrays"]).lower()]
    want = [f"{f['key']} {f['operatorType']} {' '.join(f['values'])}" for f in flt["advancedFilters"]]
    want = [w.replace("targetResourceGroupIds", "$targets") for w in want]
    got = [re.sub(r"\s+", " ", a) for a in args["--advanced-filter"]]
    assert [g.split()[:2] for g in got] == [w.split()[:2] for w in want]
    assert got[0] == want[0] and got[1].endswith("$targets")
    assert args["--max-delivery-attempts"] == [str(props["retryPolicy"]["maxDeliveryAttempts"])]
    assert args["--event-ttl"] == [str(props["retryPolicy"]["eventTimeToLiveInMinutes"])]
    assert args["--event-delivery-schema"][0].lower() == str(props["eventDeliverySchema"]).lower()


def test_the_hook_reads_the_topic_from_the_azd_environment_and_the_predown_hook_removes_only_the_subscription() -> None:
    hook = HOOK.read_text()
    assert "azd env get-value SHADOW_ROLLOUT_EXISTING_SYSTEM_TOPIC_ID" in hook
    assert 'cut -d/ -f5' in hook and 'cut -d/ -f9' in hook  # resource group and topic name of the id
    predown = PREDOWN.read_text()
    assert "system-topic event-subscription delete" in predown and f"--name {_subscription()['name']}" in predown
    assert "system-topic delete" not in predown, "the existing topic is not ours to delete"
    body = module_body(parse(MAIN)["modules"]["fleetEvents"])
    assert body["scope"] == "appRg", "a topic the deployment makes lives in the app's resource group"
