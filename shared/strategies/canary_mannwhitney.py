"""``canary-mannwhitney``: a Spinnaker/Kayenta canary per scale set, judged by the NetflixACAJudge.

Per scale set, in parallel: a canary of 5% of the set (at least one VM) gets the change; a baseline of as many
untouched VMs of the same set does not. For 60 minutes the judge compares canary and baseline every 20 minutes
(each analysis over the whole time since the canary started, Spinnaker's default growing window) on CPU, available
memory, network, error-log rate and health-probe failures. A score under 75 (marginal) at any interval fails; the
last must reach 95 (pass). Fail: the canary is rolled back and that set stops. Pass: the rest of the set at once.
The judge's defaults (Mann-Whitney at 98% confidence, tolerance 0.25, IQR outlier factor 3, pass 95 / marginal
75) are in :mod:`shared.strategies.kayenta` with their sources; the canary set-up is the contract's (scenarios
contract §3) and Spinnaker's canary stage (``canaryAnalysisIntervalMins`` 20 over a 60-minute lifetime).

Choices the contract leaves open, made to show Kayenta at its best (bench/README.md):

* Each metric is the per-minute mean over the group's VMs (a Kayenta query returns one series per scope);
  missing points are removed (``nanStrategy: remove``, which is also what Kayenta's default ``none`` parses to).
* Each metric has the direction in which it gets worse (CPU, errors and probe failures ``increase``; available
  memory and network ``decrease``), so an improvement never fails a canary. One group per metric, equal weights,
  so the score is the share of metrics that pass.
* The canary spreads over the set's strata; the baseline is matched to it VM by VM (same SKU where possible, then
  the nearest pre-change CPU, memory and network levels): Kayenta compares two groups at the same time, so what
  differs between the groups' hosts would otherwise read as the change's effect.
* A canary whose apply fails or hangs fails at once (the deployment stage fails), without waiting for the judge.
* Rollback of the canary is a restore from a snapshot taken just before it (Spinnaker would destroy the canary
  server group; here the VMs are in place). After a pass nothing watches production any more.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..adapters.simulator.scenario import Scenario
from ..domain.model import SignalFrame, VmInfo
from . import kayenta
from .base import PeerRun, Process, ceil_share, column_means, failed_applies, row_means

NAME = "canary-mannwhitney"
CANARY_SHARE = 0.05
LIFETIME_MINUTES = 60
INTERVAL_MINUTES = 20
PROFILE_MINUTES = 30
METRICS: tuple[tuple[str, str, kayenta.Direction], ...] = (
    ("cpu", "cpu_pct", kayenta.Direction.INCREASE),
    ("memory_available", "mem_available_pct", kayenta.Direction.DECREASE),
    ("network", "net_bytes", kayenta.Direction.DECREASE),
    ("error_log_rate", "error_count", kayenta.Direction.INCREASE),
    ("health_failures", "health_ok", kayenta.Direction.INCREASE),
)


def run(scenario: Scenario, seed: int | None = None) -> dict[str, Any]:
    peer = PeerRun(scenario, seed, NAME)
    peer.decide("plan", f"a canary of {CANARY_SHARE:.0%} per scale set against an equal baseline, judged every "
                        f"{INTERVAL_MINUTES} min for {LIFETIME_MINUTES} min (Mann-Whitney at "
                        f"{kayenta.CONFIDENCE_LEVEL:.0%}, tolerance {kayenta.TOLERANCE}, pass "
                        f"{kayenta.PASS_SCORE:g} / marginal {kayenta.MARGINAL_SCORE:g})")
    peer.run([canary_scale_set(peer, name, vms) for name, vms in peer.by_scale_set().items()])
    return peer.outcome()


def group_series(frame: SignalFrame) -> dict[str, NDArray[np.float64]]:
    """Each metric as one per-minute series: the mean over the group's VMs (health as the failing share)."""
    out: dict[str, NDArray[np.float64]] = {}
    for metric, signal, _ in METRICS:
        values = frame.signals[signal]
        out[metric] = column_means(1.0 - values if signal == "health_ok" else values)
    return out


def judge(baseline: dict[str, NDArray[np.float64]], canary: dict[str, NDArray[np.float64]]) -> kayenta.Judgement:
    """NetflixACAJudge over the configured metrics, one group per metric."""
    results = [kayenta.classify(metric, kayenta.transform(baseline[metric]), kayenta.transform(canary[metric]),
                                direction, group=metric) for metric, _, direction in METRICS]
    return kayenta.score(results)


def choose_groups(peer: PeerRun, vms: list[VmInfo]) -> tuple[list[str], list[str]]:
    """A canary spread over the set's strata, and a baseline matched to it VM by VM."""
    n = ceil_share(CANARY_SHARE, len(vms))
    strata: dict[str, list[str]] = {}
    for vm in vms:
        strata.setdefault(vm.stratum.key, []).append(vm.vm_id)
    queues = [peer.shuffled(ids) for _, ids in sorted(strata.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    canary: list[str] = []
    while len(canary) < n:
        for q in queues:
            if q and len(canary) < n:
                canary.append(q.pop(0))
    rest = [vm.vm_id for vm in vms if vm.vm_id not in set(canary)]
    if not rest:
        return canary, []
    ids = canary + rest
    frame = peer.signals(ids, PROFILE_MINUTES)
    profile = np.stack([row_means(frame.signals[s]) for s in ("cpu_pct", "mem_available_pct", "net_bytes")], axis=1)
    profile = np.where(np.isnan(profile), np.nanmean(profile, axis=0), profile)
    spread = profile.std(axis=0)
    profile = profile / np.where(spread > 0, spread, 1.0)
    sku = {vm.vm_id: vm.sku for vm in vms}
    row = {v: i for i, v in enumerate(ids)}
    free = set(rest)
    baseline: list[str] = []
    for c in canary:
        if not free:
            break
        pool = [v for v in free if sku[v] == sku[c]] or list(free)
        dist = np.linalg.norm(profile[[row[v] for v in pool]] - profile[row[c]], axis=1)
        best = pool[int(np.argmin(dist))]
        baseline.append(best)
        free.discard(best)
    return canary, baseline


def canary_scale_set(peer: PeerRun, name: str, vms: list[VmInfo]) -> Process:
    canary, baseline = choose_groups(peer, vms)
    peer.snapshot(canary)
    results = peer.apply(canary)
    started = peer.now
    failed = failed_applies(results)
    verdict = ""
    if failed:
        verdict = f"canary deployment failed: the apply failed on {len(failed)}/{len(canary)} canary VMs"
    elif not baseline:
        peer.decide("canary", f"scale set {name}: {len(canary)} VMs, no VM left for a baseline; promoted")
    else:
        peer.decide("canary", f"scale set {name}: canary of {len(canary)} VMs against a baseline of {len(baseline)}")
        for k in range(1, LIFETIME_MINUTES // INTERVAL_MINUTES + 1):
            yield started + k * INTERVAL_MINUTES
            window = float(k * INTERVAL_MINUTES)
            j = judge(group_series(peer.signals(baseline, window)), group_series(peer.signals(canary, window)))
            last = k * INTERVAL_MINUTES >= LIFETIME_MINUTES
            worst = "; ".join(r.reason for r in j.failing())
            peer.decide("analysis", f"scale set {name}: interval {k} score {j.score:g} ({j.classification})"
                                    + (f": {worst}" if worst else ""))
            if j.score < kayenta.MARGINAL_SCORE or (last and j.score < kayenta.PASS_SCORE):
                need = kayenta.PASS_SCORE if last else kayenta.MARGINAL_SCORE
                verdict = f"canary score {j.score:g} < {need:g} at interval {k}" + (f": {worst}" if worst else "")
                break
    if verdict:
        peer.halted = True
        peer.decide("halt_in_production", f"scale set {name}: {verdict}")
        restored = peer.restore(canary)
        peer.decide("rollback_vm", f"scale set {name}: {len(restored)}/{len(canary)} canary VMs rolled back")
        return
    rest = [vm.vm_id for vm in vms if vm.vm_id not in set(canary)]
    done = peer.apply(rest)
    peer.decide("promote", f"scale set {name}: canary passed; the other {len(done)} VMs changed at once"
                           + (f", {len(failed_applies(done))} applies failed" if failed_applies(done) else ""))
