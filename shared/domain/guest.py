"""Guest prerequisites: what each target scale set's VMs must carry before a rollout may start.

The judge and the production checks read the health probe from Log Analytics (AppHealthProbe_CL), and the
shadows' baseline needs a load generator; without them a rollout would judge nothing and call every stratum
inconclusive. Both come with the product (guest/install.sh, delivered as the CustomScript extension
``shadow-rollout-guest``) and the Azure Monitor agent sends the probe's log through the data collection rule
(infra/modules/monitoring.bicep). A scale set's model lists its VM extensions, so one read per target tells.
"""

from __future__ import annotations

from collections.abc import Mapping

from .decisions import Decision
from .kinds import DecisionKind

MONITOR_AGENT = "AzureMonitorLinuxAgent"
GUEST_KIT = "shadow-rollout-guest"
REQUIRED: dict[str, str] = {
    MONITOR_AGENT: "the Azure Monitor agent (extension type AzureMonitorLinuxAgent), which sends the health "
                   "probe's log to AppHealthProbe_CL through the data collection rule",
    GUEST_KIT: "the guest kit (extension named shadow-rollout-guest: guest/install.sh, the health probe and the "
               "stress-ng load generator)",
}


def missing_prerequisites(extensions: Mapping[str, frozenset[str]]) -> Decision | None:
    """A refusal naming each target and what it lacks, or None when every target has every prerequisite.

    ``extensions``: per target scale set, the names and types of the VM extensions in its model.
    """
    lacking = {target: [k for k in REQUIRED if k not in found] for target, found in extensions.items()}
    lacking = {t: m for t, m in lacking.items() if m}
    if not lacking:
        return None
    what = sorted({k for m in lacking.values() for k in m})
    names = ", ".join(f"{t.rstrip('/').rsplit('/', 1)[-1]} lacks {' and '.join(m)}" for t, m in sorted(lacking.items()))
    reason = (f"guest prerequisites missing on {len(lacking)} of {len(extensions)} target scale set"
              f"{'' if len(extensions) == 1 else 's'}: {names}. Needed: " + "; ".join(REQUIRED[k] for k in what)
              + " (docs/deploy.md#guest-prerequisites)")
    return Decision(DecisionKind.REFUSED, reason, data={"lacking": lacking})
