"""Activity handlers: each does one step of a rollout against the ports and records what it did.

They take the wired :class:`Services` and a JSON payload and return a small JSON summary; per-VM data
stays in the rollout store, so orchestration histories stay small whatever the fleet size. Every handler
is safe to run again (a Durable retry or a replay after a crash): work already recorded is skipped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from .. import observability
from ..bootstrap import Services
from ..domain.control import gate_outcome, on_busy_targets
from ..domain.decisions import (
    Decision,
    VmRisk,
    adaptive_error_threshold,
    assess_changed_vms,
    decide_before_production,
    plan_capacity,
    plan_scale_back,
    plan_waves,
)
from ..domain.errors import ShadowRolloutError, TransientError
from ..domain.features import FeatureTable, StratumEvidence, build_features, evidence_of
from ..domain.health import Baseline, failing_vms
from ..domain.judge import Phase, StratumVerdict, apply_fleet_evidence, judge_stratum
from ..domain.model import (
    ApplyResult,
    ApplyStatus,
    ChangeSpec,
    Config,
    ShadowInfo,
    ShadowPlan,
    ShadowState,
    SnapshotInfo,
    Stratum,
    VmInfo,
)
from ..domain.policy import RolloutPolicy
from ..domain.request import instance_id_for, parse_request
from ..domain.sampling import plan_shadow_sample
from .chunks import chunk, chunk_count
from .cleanup import ensure_record
from .idempotency import capacity_target, remember, remembered

SOURCE_LOAD_MINUTES = 30
PRE_CHANGE_MINUTES = 15
DEMAND_MINUTES = 10
SERVING_MINUTES = 3
PEER_SAMPLE = 200
MIN_PEERS = 5
DEFAULT_UTILISATION = 0.4


# ---------------------------------------------------------------------------------------------- helpers
class _Rollout:
    """The rollout record and its policy, loaded once per activity."""

    def __init__(self, svc: Services, rollout_id: str) -> None:
        record = svc.store.get_rollout(rollout_id)
        if record is None:
            raise KeyError(f"rollout {rollout_id} is not in the store")
        self.svc = svc
        self.id = rollout_id
        self.record = record
        self.policy = RolloutPolicy.model_validate(record["policy"])
        self.started = datetime.fromisoformat(record["started_at"])

    @property
    def now(self) -> datetime:
        return self.svc.now()

    def minute(self, t: datetime | None = None) -> float:
        return round(((t or self.now) - self.started) / timedelta(minutes=1), 1)

    def decide(self, decisions: Iterable[Decision]) -> None:
        minute = self.minute()
        self.svc.store.add_decisions(self.id, [{"minute": minute, **d.to_dict()} for d in decisions])

    def update(self, **fields: Any) -> None:
        self.svc.store.put_rollout(self.id, fields)
        self.record.update(fields)

    def vms(self) -> dict[str, dict[str, Any]]:
        return self.svc.store.get_items(self.id, "vm")

    def put_vms(self, items: dict[str, dict[str, Any]]) -> None:
        self.svc.store.put_items(self.id, "vm", items)


def publish_outcome(r: _Rollout, kind: str, reason: str, **summary: Any) -> None:
    """Publish one outcome event; its id is stable across retries so that consumers can deduplicate.

    A failure to publish is recorded, not raised: the rollout's own state must not depend on the topic.
    """
    req = r.record.get("request", {})
    seq = summary.pop("seq", "")
    event = {"event_id": f"{r.id}:{kind}{':' + str(seq) if seq != '' else ''}", "type": f"rollout.{kind}",
             "rollout_id": r.id, "instance_id": instance_id_for(r.id), "state": r.record.get("state"),
             "reason": reason, "time": _iso(r.now), "requester": req.get("requester"), "source": req.get("source"),
             "origin": req.get("origin", {}), "targets": req.get("targets", []),
             "change_id": (req.get("change") or {}).get("change_id"), "summary": summary}
    try:
        r.svc.outcomes.publish(event)
    except Exception as exc:  # any transport error: recorded with its type
        r.decide([Decision("outcome_not_published", f"{event['type']} not published: {type(exc).__name__}: {exc}")])


def _short(resource_id: str) -> str:
    """A VM's name as an operator knows it: ``web_3`` (Flexible) or ``api/7`` (Uniform instance)."""
    parts = resource_id.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-2] == "virtualMachines" and parts[-4] == "virtualMachineScaleSets":
        return f"{parts[-3]}/{parts[-1]}"
    return parts[-1]


def _iso(t: datetime) -> str:
    return t.isoformat()


def _nanmean_rows(a: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        ok = ~np.isnan(a)
        total = np.where(ok, a, 0.0).sum(axis=1)
        count = ok.sum(axis=1)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


# ---------------------------------------------------------------------------------------------- start
def start_rollout(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    """Validate the request, take the inventory and plan the shadow pool. Changes no VM."""
    req = parse_request(payload["request"])
    existing = svc.store.get_rollout(req.rollout_id)
    if existing is not None and existing.get("shadow_chunks") is not None:
        return {"rollout_id": req.rollout_id, "vms": existing["vm_count"], "strata": existing["strata"],
                "shadow_chunks": existing["shadow_chunks"], "policy": existing["policy"]}
    policy = RolloutPolicy().with_overrides(req.policy)
    vms = svc.fleet.inventory(req.targets)
    now = svc.now()
    strata = sorted({vm.stratum for vm in vms})
    sample = plan_shadow_sample(vms, policy, salt=req.rollout_id)
    record = {
        "rollout_id": req.rollout_id, "request": req.model_dump(), "policy": policy.model_dump(mode="json"),
        "started_at": _iso(now), "state": "running", "phase": "shadow_pool", "vm_count": len(vms),
        "strata": len(strata), "shadow_chunks": chunk_count(len(sample.plans)), "rollback_batches": 0,
        "halted": False, "extra": {}, "original_capacity": {t: svc.fleet.capacity(t) for t in req.targets},
    }
    # the record (its shadow_chunks says "planned") is written last: a re-run after a death part-way plans again
    svc.store.put_items(req.rollout_id, "vm", {
        vm.vm_id: {"info": vm.to_dict(), "stratum": vm.stratum.key, "config": Config.OLD.value, "actions": []}
        for vm in vms})
    svc.store.put_items(req.rollout_id, "plan", {str(i): p.to_dict() for i, p in enumerate(sample.plans)})
    if existing is not None and existing.get("original_capacity"):  # a capacity seen before any change wins
        record["original_capacity"] = existing["original_capacity"]
    svc.store.put_rollout(req.rollout_id, record)
    r = _Rollout(svc, req.rollout_id)
    r.decide([Decision("inventory", f"{len(vms)} VMs in {len(req.targets)} scale sets, {len(strata)} strata"),
              Decision("plan_shadows", sample.reason, data={"shadows": len(sample.plans)})])
    return {"rollout_id": req.rollout_id, "vms": len(vms), "strata": len(strata),
            "shadow_chunks": record["shadow_chunks"], "policy": record["policy"]}


def claim_targets(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    """Take the leases of the target scale sets, or say how long to wait (queue) or why not (refuse)."""
    r = _Rollout(svc, payload["rollout_id"])
    targets = r.record["request"]["targets"]
    got = svc.leases.acquire(targets, r.id, now=r.now)
    if got.acquired:
        if not r.record.get("claimed"):
            waited = r.minute() - r.minute(datetime.fromisoformat(r.record.get("queued_since") or _iso(r.now)))
            r.update(claimed=True)
            r.decide([Decision("claimed", f"{len(targets)} target scale sets leased to this rollout"
                               + (f" after waiting {waited:.0f} minutes" if waited > 0 else ""))])
        return {"claimed": True, "retry_minutes": None, "reason": ""}
    since = r.record.get("queued_since") or _iso(r.now)
    waited = (r.now - datetime.fromisoformat(since)) / timedelta(minutes=1)
    d = on_busy_targets([(c.resource, c.holder, c.since) for c in got.conflicts], r.policy, waited)
    r.update(queued_since=since, phase="waiting_for_targets" if d.kind == "queued" else "refused")
    r.decide([d])
    return {"claimed": False, "retry_minutes": d.data["retry_minutes"], "reason": d.reason}


def resolve_gate(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    """Record how the approval gate ended and whether production may start."""
    r = _Rollout(svc, payload["rollout_id"])
    opened = datetime.fromisoformat(payload["opened_at"])
    d = gate_outcome(payload["outcome"], payload.get("event"), r.policy, (r.now - opened) / timedelta(minutes=1))
    fields: dict[str, Any] = {"approval": {"outcome": payload["outcome"], "by": d.data["by"], "reason": d.reason}}
    if not d.data["proceed"]:
        fields.update(halted=True, phase="halted_before_production")
        if payload["outcome"] == "aborted":
            fields["aborted"] = {"by": d.data["by"], "reason": d.reason}
    r.update(**fields)
    r.decide([d])
    return {"proceed": d.data["proceed"], "reason": d.reason}


def abort_rollout(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    """An operator aborted: no further VM is changed; what was changed stays watched and recoverable."""
    r = _Rollout(svc, payload["rollout_id"])
    raw = payload.get("event")
    event: dict[str, Any] = raw if isinstance(raw, dict) else {}
    by = str(event.get("by") or "unknown")
    note = event.get("reason")
    reason = f"aborted by {by} {payload['where']}" + (f": {note}" if note else "")
    phase = "halted_in_production" if payload.get("in_production") else "halted_before_production"
    r.update(halted=True, phase=phase, aborted={"by": by, "reason": reason})
    r.decide([Decision("aborted", reason)])
    publish_outcome(r, "aborted", reason, by=by)
    return {"halt": True, "reason": reason}


# ---------------------------------------------------------------------------------------------- shadows
def _plans(r: _Rollout) -> list[tuple[int, ShadowPlan]]:
    items = r.svc.store.get_items(r.id, "plan")
    return [(int(k), ShadowPlan.from_dict(items[k])) for k in sorted(items, key=int)]


def _shadows(r: _Rollout) -> dict[str, ShadowInfo]:
    return {k: ShadowInfo.from_dict(v["info"]) for k, v in r.svc.store.get_items(r.id, "shadow").items()}


def create_shadows(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    r = _Rollout(svc, payload["rollout_id"])
    plans = chunk(_plans(r), payload["chunk"])
    done = {v["plan"] for v in svc.store.get_items(r.id, "shadow").values()}
    todo = [(i, p) for i, p in plans if i not in done]
    regular_now = sum(1 for v in svc.store.get_items(r.id, "shadow").values()
                      if v["info"]["state"] != ShadowState.FAILED.value and not v["info"]["spot"])
    created = svc.shadows.create([p for _, p in todo], rollout_id=r.id, spot_fallback=r.policy.spot_fallback,
                                 max_regular=max(0, r.policy.max_regular_shadows - regular_now)) if todo else []
    svc.store.put_items(r.id, "shadow", {s.shadow_id or f"failed:{i}": {"info": s.to_dict(), "plan": i,
                                                                         "role": p.role}
                                         for (i, p), s in zip(todo, created, strict=True)})
    failed = [s for s in created if s.state is ShadowState.FAILED]
    regular = [s for s in created if s.state is ShadowState.RUNNING and (not s.spot or s.message)]
    observability.shadows_created(r.id, spot=len(created) - len(failed) - len(regular), regular=len(regular),
                                  failed=len(failed))
    decisions = [Decision("shadow_unavailable", f"no shadow for {Stratum.from_key(s.stratum_key).label}: {s.message}",
                          s.stratum_key) for s in failed]
    decisions += [Decision("shadow_regular_price" if not s.spot else "shadow_family_size",
                           f"{Stratum.from_key(s.stratum_key).label}: {s.message}",
                           s.stratum_key) for s in regular]
    r.decide(decisions)
    return {"created": len(created) - len(failed), "failed": len(failed), "regular": len(regular)}


def drive_shadow_load(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    """Drive each shadow at its source VM's recent utilisation (estimated from its CPU)."""
    r = _Rollout(svc, payload["rollout_id"])
    shadows = {k: s for k, s in _shadows(r).items() if s.state is ShadowState.RUNNING}
    sources = sorted({s.source_vm_id for s in shadows.values()})
    now = r.now
    util: dict[str, float] = {}
    if sources:
        frame = svc.telemetry.signals(sources, now - timedelta(minutes=SOURCE_LOAD_MINUTES), now)
        cpu = _nanmean_rows(frame.signals["cpu_pct"]) / 100.0
        util = {v: (float(c) if not np.isnan(c) else DEFAULT_UTILISATION) for v, c in zip(sources, cpu, strict=True)}
    targets = {k: round(min(1.0, util[s.source_vm_id]), 4) for k, s in shadows.items()}
    if targets:
        svc.shadow_load.drive(targets)
        svc.store.put_items(r.id, "shadow", {k: {"load": v} for k, v in targets.items()})
    r.update(baseline_start=_iso(r.now + timedelta(minutes=1)), phase="baseline")
    mean = sum(targets.values()) / len(targets) if targets else 0.0
    r.decide([Decision("shadow_load", f"{len(targets)} shadows driven at their sources' utilisation "
                       f"(mean {mean:.2f}) for a {r.policy.baseline_minutes}-minute baseline")])
    return {"driven": len(targets)}


def apply_to_shadows(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    r = _Rollout(svc, payload["rollout_id"])
    if payload["chunk"] == 0 and "shadow_apply_at" not in r.record:
        r.update(shadow_apply_at=_iso(r.now), phase="bake")
    items = svc.store.get_items(r.id, "shadow")
    keys = chunk(sorted(items), payload["chunk"])
    status = svc.shadows.status([k for k in keys if not k.startswith("failed:")])
    todo = [k for k in keys if status.get(k) is ShadowState.RUNNING and "apply" not in items[k]
            and items[k]["role"] == "treated"]
    change = ChangeSpec.from_dict(r.record["request"]["change"])
    results = svc.fleet.apply_change(todo, change, timeout_minutes=r.policy.apply_timeout_minutes) if todo else []
    svc.store.put_items(r.id, "shadow", {a.vm_id: {"apply": a.to_dict()} for a in results})
    evicted = [k for k in keys if status.get(k) is ShadowState.EVICTED]
    if evicted:
        r.decide([Decision("shadow_evicted", f"{len(evicted)} shadows evicted before the change")])
    failed = sum(1 for a in results if a.status is not ApplyStatus.OK)
    done = max((a.duration_s for a in results), default=0.0)
    r.update(**{f"shadow_apply_done_{payload['chunk']}": _iso(r.now)})
    return {"applied": len(results), "failed": failed, "slowest_s": done}


def _verdicts(r: _Rollout) -> tuple[dict[str, StratumVerdict], StratumVerdict | None]:
    """Judge every stratum, and all treated shadows pooled, from baseline and post-change windows up to now."""
    items = r.svc.store.get_items(r.id, "shadow")
    baseline_start = datetime.fromisoformat(r.record["baseline_start"])
    apply_at = datetime.fromisoformat(r.record["shadow_apply_at"])
    applied_done = max((datetime.fromisoformat(v) for k, v in r.record.items()
                        if k.startswith("shadow_apply_done_")), default=apply_at)
    now = r.now
    observed = [k for k, v in items.items() if "apply" in v]
    controls = [k for k, v in items.items() if v["role"] == "control" and not k.startswith("failed:")]
    frame = r.svc.telemetry.signals(observed + controls, baseline_start, now) if observed else None
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for k in observed:
        by_stratum[items[k]["info"]["stratum_key"]].append(k)
    twins: dict[str, list[str]] = defaultdict(list)
    for k in controls:
        twins[Stratum.from_key(items[k]["info"]["stratum_key"]).twin_group].append(k)
    verdicts: dict[str, StratumVerdict] = {}
    all_strata = {v["stratum"] for v in r.vms().values()}
    for key in sorted(all_strata):
        label = Stratum.from_key(key).label
        rows = by_stratum.get(key, [])
        if not rows or frame is None:
            verdicts[key] = StratumVerdict(key, label, Phase.INCONCLUSIVE, None,
                                           f"no shadow of stratum {label} received the change", 0)
            continue
        sub = frame.rows(rows)
        applies = [ApplyResult.from_dict(items[k]["apply"]) for k in rows]
        twin_rows = twins.get(Stratum.from_key(key).twin_group, [])
        control = frame.rows(twin_rows) if twin_rows else None
        verdicts[key] = judge_stratum(
            key, label, sub.between(baseline_start, apply_at), sub.between(applied_done, now), applies, r.policy,
            control=(control.between(baseline_start, apply_at), control.between(applied_done, now))
            if control is not None else None)
    fleet: StratumVerdict | None = None
    ok = [k for k in observed if items[k]["apply"]["status"] == "ok"]
    if frame is not None and ok:
        pooled = frame.rows(ok)
        twin_frame = frame.rows(controls) if controls else None
        fleet = judge_stratum(
            "fleet", "all strata", pooled.between(baseline_start, apply_at), pooled.between(applied_done, now),
            [ApplyResult.from_dict(items[k]["apply"]) for k in ok], r.policy,
            control=(twin_frame.between(baseline_start, apply_at), twin_frame.between(applied_done, now))
            if twin_frame is not None else None)
        if len(by_stratum) > 1:
            verdicts = apply_fleet_evidence(verdicts, fleet, r.policy)
    return verdicts, fleet


def _evidence(r: _Rollout, verdicts: dict[str, StratumVerdict], fleet: StratumVerdict | None
              ) -> tuple[dict[str, StratumEvidence], StratumEvidence | None]:
    items = r.svc.store.get_items(r.id, "shadow")
    treated: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for v in items.values():
        if "apply" in v:
            treated[v["info"]["stratum_key"]].append(v)

    def of(verdict: StratumVerdict, shadows: list[dict[str, Any]]) -> StratumEvidence:
        return evidence_of(verdict, [ApplyResult.from_dict(x["apply"]) for x in shadows],
                           [x["load"] for x in shadows if x.get("load") is not None])

    evidence = {k: of(v, treated.get(k, [])) for k, v in verdicts.items()}
    pooled = of(fleet, [x for xs in treated.values() for x in xs]) if fleet is not None else None
    return evidence, pooled


def _risks(r: _Rollout, evidence: dict[str, StratumEvidence], fleet: StratumEvidence | None
           ) -> tuple[list[VmInfo], FeatureTable, list[VmRisk]]:
    vms = [VmInfo.from_dict(v["info"]) for v in r.vms().values()]
    table = build_features(vms, evidence, fleet)
    return vms, table, r.svc.model.predict(table)


def analyse_shadows(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    """One analysis during the bake; says whether the evidence already demands a halt."""
    r = _Rollout(svc, payload["rollout_id"])
    verdicts, fleet = _verdicts(r)
    evidence, pooled = _evidence(r, verdicts, fleet)
    svc.store.put_items(r.id, "evidence", {k: e.to_dict() for k, e in evidence.items()})
    svc.store.put_items(r.id, "fleet_evidence", {"fleet": pooled.to_dict()} if pooled else {})
    _, _, risks = _risks(r, evidence, pooled)
    plan = decide_before_production(risks, r.policy)
    failing = [v for v in verdicts.values() if v.phase is Phase.FAILED]
    inconclusive = [v for v in verdicts.values() if v.phase is Phase.INCONCLUSIVE]
    svc.store.put_items(r.id, "verdict", {k: v.to_dict() for k, v in verdicts.items()})
    baked = r.minute() - r.minute(datetime.fromisoformat(r.record["shadow_apply_at"]))
    r.decide([Decision("analysis", f"bake minute {baked:.0f}: "
                       f"{len(failing)} failing, {len(inconclusive)} inconclusive of {len(verdicts)} strata"
                       + (f"; worst: {failing[0].reason}" if failing else ""),
                       data={"failing": len(failing), "inconclusive": len(inconclusive)})])
    return {"failing": len(failing), "inconclusive": len(inconclusive), "strata": len(verdicts),
            "halt": plan.halt}


def decide(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    """Predict for every production VM, then halt, or skip the at-risk VMs and plan the waves."""
    r = _Rollout(svc, payload["rollout_id"])
    raw = svc.store.get_items(r.id, "verdict")
    verdicts = {k: StratumVerdict(k, v["label"], Phase(v["phase"]), v["score"], v["reason"], v["shadows_observed"])
                for k, v in raw.items()}
    evidence = {k: StratumEvidence.from_dict(v) for k, v in svc.store.get_items(r.id, "evidence").items()}
    pooled_raw = svc.store.get_items(r.id, "fleet_evidence").get("fleet")
    vms, table, risks = _risks(r, evidence, StratumEvidence.from_dict(pooled_raw) if pooled_raw else None)
    plan = decide_before_production(risks, r.policy)
    threshold = adaptive_error_threshold(plan.predicted_rate, r.policy)
    skipped = set(plan.skipped)
    observability.predictions_made(r.id, [(x.source, x.vm_id in skipped) for x in risks],
                                   outcome="halt" if plan.halt else "dry_run" if r.policy.dry_run else "production")
    r.put_vms({x.vm_id: {"risk": x.probability, "risk_source": x.source, "judge_score": table.judge_scores[i],
                         "features": {n: (None if not np.isfinite(v) else round(float(v), 6))
                                      for n, v in zip(table.names, table.matrix[i], strict=True)},
                         "evidence": verdicts[x.stratum_key].reason if x.stratum_key in verdicts else "",
                         "skipped": x.vm_id in skipped} for i, x in enumerate(risks)})
    decisions = list(plan.decisions)
    fallbacks: dict[tuple[str, str], int] = defaultdict(int)
    for x in risks:
        if x.source.startswith("judge (fallback"):
            fallbacks[(x.stratum_key, x.source)] += 1
    decisions += [Decision("model_fallback", f"{n} VMs of stratum {Stratum.from_key(k).label} scored by the "
                           f"statistical judge instead of the model: {src.split(': ', 1)[1].rstrip(')')}", k)
                  for (k, src), n in sorted(fallbacks.items())]
    for v in verdicts.values():
        if v.phase is Phase.FAILED:
            decisions.insert(0, Decision("stratum_failed", v.reason, v.stratum_key, {"score": v.score}))
    r.update(decided_at=_iso(r.now))
    if plan.halt:
        r.update(halted=True, phase="halted_before_production")
        r.decide(decisions)
        return {"halt": True, "waves": [], "included": 0, "skipped": len(plan.skipped)}
    if r.policy.dry_run:
        r.update(halted=True, phase="dry_run")
        decisions.append(Decision("dry_run", f"dry run: predictions recorded for {len(risks)} VMs; "
                                  f"{len(plan.included)} would proceed, {len(plan.skipped)} would be skipped; "
                                  "production not touched"))
        r.decide(decisions)
        return {"halt": True, "waves": [], "included": len(plan.included), "skipped": len(plan.skipped)}
    by_stratum: dict[str, list[str]] = defaultdict(list)
    stratum_of = {vm.vm_id: vm.stratum.key for vm in vms}
    for vm_id in plan.included:
        by_stratum[stratum_of[vm_id]].append(vm_id)
    waves = plan_waves(by_stratum, r.policy, salt=r.id)
    svc.store.put_items(r.id, "wave", {str(i): {"vm_ids": w} for i, w in enumerate(waves)})
    r.put_vms({vm_id: {"wave": i} for i, w in enumerate(waves) for vm_id in w})
    r.update(threshold=threshold.value, threshold_reason=threshold.reason, predicted_rate=plan.predicted_rate,
             at_risk=plan.at_risk, phase="production")
    decisions.append(Decision("error_threshold", threshold.reason, data={"threshold": threshold.value}))
    decisions.append(Decision("plan_waves", f"{len(waves)} waves of " + ", ".join(str(len(w)) for w in waves)
                              + " VMs, each a slice of every included stratum"))
    r.decide(decisions)
    return {"halt": False, "waves": [len(w) for w in waves], "included": len(plan.included),
            "skipped": len(plan.skipped), "threshold": threshold.value}


def teardown_shadows(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    r = _Rollout(svc, payload["rollout_id"])
    items = svc.store.get_items(r.id, "shadow")
    live = [k for k, v in items.items() if not k.startswith("failed:") and not v.get("deleted")]
    removed = svc.shadows.teardown(live) if live else 0
    svc.store.put_items(r.id, "shadow", {k: {"deleted": True} for k in live})
    if live:
        r.decide([Decision("teardown_shadows", f"{removed} shadows deleted with their disks and snapshots")])
    return {"deleted": removed}


# ---------------------------------------------------------------------------------------------- production
def _snapshot(r: _Rollout, vm_ids: list[str], items: dict[str, dict[str, Any]]) -> int:
    todo = [v for v in vm_ids if "snapshot" not in items[v]]
    if not todo:
        return 0
    snaps = r.svc.snapshots.snapshot(todo, tag=f"pre-{r.id}")
    r.put_vms({s.vm_id: {"snapshot": s.to_dict(), "actions": items[s.vm_id]["actions"] + ["snapshot"]}
               for s in snaps})
    missing = sorted(set(todo) - {s.vm_id for s in snaps})
    if missing:  # raise so that a Durable retry takes the rest; what succeeded is kept
        raise TransientError(f"no snapshot for {len(missing)} of {len(todo)} VMs, e.g. {missing[0]}",
                             operation="snapshot", resource=missing[0])
    return len(snaps)


def _demand(r: _Rollout, vm_ids: list[str]) -> tuple[float, int]:
    """VM units needed to keep the given VMs' load at the target utilisation, and how many report."""
    now = r.now
    frame = r.svc.telemetry.signals(vm_ids, now - timedelta(minutes=DEMAND_MINUTES), now)
    cpu = _nanmean_rows(frame.signals["cpu_pct"]) / 100.0
    health = _nanmean_rows(frame.signals["health_ok"][:, -SERVING_MINUTES:])
    ok = health >= 0.5
    serving = int(np.sum(ok))
    if serving == 0:
        return float(len(vm_ids)), 0
    # a failed VM's traffic lands on the others: demand is what the healthy ones carry, scaled to all
    per_vm = float(np.nanmean(cpu[ok])) if np.any(~np.isnan(cpu[ok])) else DEFAULT_UTILISATION
    return per_vm * len(vm_ids) / r.policy.target_utilisation, serving


def _scale_out(r: _Rollout, target: str, d: Decision | None, extra: dict[str, int],
               decisions: list[Decision]) -> None:
    """Carry out a scale-out decision, if there is one, and remember the instances borrowed."""
    if d is None:
        return
    before = r.svc.fleet.capacity(target)
    after = capacity_target(r.record, target, d.data["extra_total"])  # absolute: a second run sets the same
    r.svc.fleet.set_capacity(target, after)
    observability.capacity_changed(r.id, _short(target), before=before, after=after, reason=d.reason)
    extra[target] = d.data["extra_total"]
    decisions.append(d)


def prepare(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    """Snapshot the VMs at risk, queue their rollbacks, and pre-allocate capacity for expected failures."""
    r = _Rollout(svc, payload["rollout_id"])
    items = r.vms()
    at_risk = list(r.record.get("at_risk", []))
    taken = _snapshot(r, at_risk, items)
    if at_risk:
        svc.store.put_items(r.id, "standby", {v: {"state": "queued"} for v in at_risk})
    decisions = [Decision("prepare", f"{taken} at-risk VMs snapshotted and queued for rollback "
                          f"(predicted >= {r.policy.snapshot_probability:g})")] if at_risk else []
    by_set: dict[str, list[str]] = defaultdict(list)
    for vm_id, v in items.items():
        by_set[v["info"]["scale_set"]].append(vm_id)
    extra = dict(r.record.get("extra", {}))
    for target in r.record["request"]["targets"]:
        name = target.rsplit("/", 1)[-1]
        members = by_set.get(name, [])
        at_risk_here = [v for v in members if v in set(at_risk)]
        expected = round(sum(items[v].get("risk") or 0.0 for v in at_risk_here))
        if not members or expected <= 0:
            continue
        demand, serving = _demand(r, members)
        d = plan_capacity(name, demand, serving - expected + extra.get(target, 0), expected,
                          extra.get(target, 0), r.policy,
                          basis=f"are expected to fail (predicted risk of {len(at_risk_here)} at-risk VMs)")
        _scale_out(r, target, d, extra, decisions)
    r.update(extra=extra)
    r.decide(decisions)
    return {"snapshots": taken, "extra": extra}


def _wave_ids(r: _Rollout, wave: int) -> list[str]:
    return list(r.svc.store.get_items(r.id, "wave")[str(wave)]["vm_ids"])


def snapshot_wave(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    r = _Rollout(svc, payload["rollout_id"])
    ids = chunk(_wave_ids(r, payload["wave"]), payload["chunk"])
    return {"snapshots": _snapshot(r, ids, r.vms())}


def apply_wave(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    """Apply the change to one chunk of a wave; remember each VM's pre-change error rate first."""
    r = _Rollout(svc, payload["rollout_id"])
    items = r.vms()
    ids = chunk(_wave_ids(r, payload["wave"]), payload["chunk"])
    unprotected = [v for v in ids if "apply" not in items[v] and "snapshot" not in items[v]
                   and not items[v].get("excluded")]
    if unprotected:
        r.put_vms({v: {"excluded": "no pre-change snapshot"} for v in unprotected})
        r.decide([Decision("exclude_vm", f"{_short(v)}: no pre-change snapshot could be taken, so it could not be "
                           "restored; left on the old configuration", v) for v in unprotected])
    todo = [v for v in ids if "apply" not in items[v] and "snapshot" in items[v]]
    if not todo:
        return {"applied": 0, "failed": 0, "excluded": len(unprotected)}
    now = r.now
    frame = svc.telemetry.signals(todo, now - timedelta(minutes=PRE_CHANGE_MINUTES), now)
    base_err = _nanmean_rows(frame.signals["error_count"])
    base_cpu = _nanmean_rows(frame.signals["cpu_pct"])
    r.put_vms({v: {"baseline_errors": None if np.isnan(e) else round(float(e), 3),
                   "baseline_cpu": None if np.isnan(c) else round(float(c), 2), "config": Config.NEW.value,
                   "applying": True} for v, e, c in zip(todo, base_err, base_cpu, strict=True)})
    change = ChangeSpec.from_dict(r.record["request"]["change"])
    try:
        results = svc.fleet.apply_change(todo, change, timeout_minutes=r.policy.apply_timeout_minutes)
    except ShadowRolloutError as exc:
        # the batch was refused as a whole (per-VM failures come back as results): nothing was applied
        r.put_vms({v: {"config": Config.OLD.value, "applying": False, "apply_error": str(exc)} for v in todo})
        raise
    r.put_vms({a.vm_id: {"apply": a.to_dict(), "applied_at": _iso(r.now), "applying": False,
                         "actions": items[a.vm_id]["actions"] + ["apply"]} for a in results})
    failed = sum(1 for a in results if a.status is not ApplyStatus.OK)
    return {"applied": len(results), "failed": failed, "excluded": len(unprotected)}


def check_production(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    """Find failing changed VMs, queue them for rollback, and (between waves) apply the error threshold.

    Safe to run twice: what it found is written ahead under the caller's key (``check``) before anything is
    queued, so a run after a death part-way queues the same VMs in the same batch and answers the same."""
    r = _Rollout(svc, payload["rollout_id"])
    key = payload.get("check")
    found = remembered(svc.store, r.id, key)
    if found is not None and found.get("done"):
        return dict(found["answer"])
    found = found or remember(svc.store, r.id, key, _assess_production(r, payload.get("context") == "wave"))
    failing: dict[str, str] = found["failing"]
    batch = found["answer"]["batch"]
    decisions: list[Decision] = []
    if failing:
        r.update(rollback_batches=max(int(r.record.get("rollback_batches", 0)), int(batch[1:])))
        svc.store.put_items(r.id, "batch", {batch: {"vm_ids": sorted(failing)}})
        r.put_vms({k: {"rollback": {"batch": batch, "state": "queued", "reason": why}} for k, why in failing.items()})
        decisions += [Decision("rollback_vm", f"{_short(k)}: {why}", k) for k, why in sorted(failing.items())]
        for k, why in sorted(failing.items()):
            observability.rollback_queued(r.id, k, why)
    verdict = Decision.from_dict(found["verdict"]) if found.get("verdict") else None
    if verdict is not None:
        decisions.append(verdict)
        if found["answer"]["halt"]:
            r.update(halted=True, phase="halted_in_production")
            publish_outcome(r, "halted", verdict.reason, where="production", failing=found["failing_total"],
                            changed=found["answer"]["changed"])
    r.decide(decisions)
    remember(svc.store, r.id, key, {**found, "done": True})
    return dict(found["answer"])


def _assess_production(r: _Rollout, between_waves: bool) -> dict[str, Any]:
    """What a production check finds, before it changes anything: failing VMs, their batch, the verdict."""
    items = r.vms()
    changed = [k for k, v in items.items() if "apply" in v]
    live = [k for k in changed if not items[k].get("rollback")]
    now = r.now
    window = timedelta(minutes=max(r.policy.health_window_minutes, r.policy.flap_window_minutes,
                                   r.policy.error_window_minutes))
    frame = r.svc.telemetry.signals(live, now - window, now) if live else None
    applies = [ApplyResult.from_dict(items[k]["apply"]) for k in live if items[k]["apply"]["status"] != "ok"]
    baselines = {k: Baseline(items[k].get("baseline_errors"), items[k].get("baseline_cpu")) for k in live}
    failing = failing_vms(frame, baselines, applies, r.policy, _peer_error_rate(r, items)) if frame is not None else {}
    failing_total = sum(1 for k in changed if items[k].get("rollback")) + len(failing)
    batch = f"b{int(r.record.get('rollback_batches', 0)) + 1}" if failing else ""
    halt, verdict = False, None
    if between_waves:
        threshold = adaptive_error_threshold(float(r.record.get("predicted_rate", 0.0)), r.policy)
        d = assess_changed_vms(len(changed), failing_total, threshold)
        halt = d.kind == "halt_in_production"
        verdict = d.to_dict() if halt or failing else None
    return {"failing": dict(failing), "failing_total": failing_total, "verdict": verdict,
            "answer": {"failing": len(failing), "batch": batch, "chunks": chunk_count(len(failing)), "halt": halt,
                       "changed": len(changed)}}


def halt(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    """Stop before the next wave for a reason found outside the error threshold."""
    r = _Rollout(svc, payload["rollout_id"])
    r.update(halted=True, phase="halted_in_production")
    r.decide([Decision("halt_in_production", payload["reason"])])
    publish_outcome(r, "halted", payload["reason"], where="production")
    return {"halt": True}


def _peer_error_rate(r: _Rollout, items: dict[str, dict[str, Any]]) -> float | None:
    """Median error-log rate now of VMs still on the old configuration (skipped or not yet reached)."""
    untouched = sorted(k for k, v in items.items() if "apply" not in v)[:PEER_SAMPLE]
    if len(untouched) < MIN_PEERS:
        return None
    now = r.now
    frame = r.svc.telemetry.signals(untouched, now - timedelta(minutes=r.policy.error_window_minutes), now)
    rates = _nanmean_rows(frame.signals["error_count"])
    rates = rates[~np.isnan(rates)]
    return float(np.median(rates)) if rates.size >= MIN_PEERS else None


def _batch(r: _Rollout, batch: str) -> list[str]:
    return list(r.svc.store.get_items(r.id, "batch")[batch]["vm_ids"])


def reserve_capacity(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    """Scale out ahead of a rollback so that demand stays served while the VMs are restored."""
    r = _Rollout(svc, payload["rollout_id"])
    items = r.vms()
    batch = _batch(r, payload["batch"])
    by_set: dict[str, list[str]] = defaultdict(list)
    for k in batch:
        by_set[items[k]["info"]["scale_set"]].append(k)
    extra = dict(r.record.get("extra", {}))
    decisions: list[Decision] = []
    for target in r.record["request"]["targets"]:
        name = target.rsplit("/", 1)[-1]
        leaving = by_set.get(name, [])
        if not leaving:
            continue
        members = [k for k, v in items.items() if v["info"]["scale_set"] == name]
        others = [k for k in members if k not in set(leaving)]
        demand, _ = _demand(r, members)
        serving_others = len(others) - len(_not_serving(r, others)) if others else 0
        d = plan_capacity(name, demand, serving_others + extra.get(target, 0), len(leaving), extra.get(target, 0),
                          r.policy)
        _scale_out(r, target, d, extra, decisions)
    r.update(extra=extra)
    r.decide(decisions)
    return {"extra": extra}


def _not_serving(r: _Rollout, vm_ids: list[str]) -> set[str]:
    now = r.now
    frame = r.svc.telemetry.signals(vm_ids, now - timedelta(minutes=SERVING_MINUTES), now)
    health = _nanmean_rows(frame.signals["health_ok"])
    return {v for v, h in zip(vm_ids, health, strict=True) if not h >= 0.5}


def restore_vms(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    """Restore one chunk of a rollback batch from pre-change snapshots, then run the post-rollback script."""
    r = _Rollout(svc, payload["rollout_id"])
    items = r.vms()
    ids = chunk(_batch(r, payload["batch"]), payload["chunk"])
    todo = [k for k in ids if items[k]["rollback"]["state"] == "queued"]
    if not todo:
        return {"restored": 0}
    snaps = [SnapshotInfo.from_dict(items[k]["snapshot"]) for k in todo]
    results = svc.fleet.restore_from_snapshots(snaps)
    for x in results:
        observability.rollback_finished(r.id, x.vm_id, ok=x.ok, message=x.message)
    ok = [x.vm_id for x in results if x.ok]
    scripts = svc.fleet.run_script(ok, r.policy.post_rollback_script) if ok else {}
    updates: dict[str, dict[str, Any]] = {}
    for x in results:
        rb = dict(items[x.vm_id]["rollback"])
        rb.update(state="restored" if x.ok else "restore_failed", attempts=x.attempts, message=x.message,
                  script_ok=scripts.get(x.vm_id))
        updates[x.vm_id] = {"rollback": rb, "config": Config.OLD.value if x.ok else items[x.vm_id]["config"],
                            "actions": items[x.vm_id]["actions"] + ["restore", "post_rollback_script"]}
    r.put_vms(updates)
    return {"restored": len(ok), "failed": len(results) - len(ok)}


def verify_recovered(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    r = _Rollout(svc, payload["rollout_id"])
    items = r.vms()
    ids = [k for k in _batch(r, payload["batch"]) if items[k]["rollback"]["state"] == "restored"]
    unhealthy = _not_serving(r, ids) if ids else set()
    r.put_vms({k: {"rollback": {**items[k]["rollback"], "state": "unhealthy" if k in unhealthy else "verified"}}
               for k in ids})
    decisions = [Decision("recovered", f"{len(ids) - len(unhealthy)}/{len(ids)} restored VMs of batch "
                          f"{payload['batch']} healthy after the post-rollback script")]
    decisions += [Decision("restore_unhealthy", f"{_short(k)} still failing its health probe after "
                           "restore; left for an operator", k) for k in sorted(unhealthy)]
    r.decide(decisions)
    publish_outcome(r, "rollback", decisions[0].reason, seq=payload["batch"], batch=payload["batch"],
                    restored=len(ids), verified=len(ids) - len(unhealthy), unhealthy=len(unhealthy))
    return {"verified": len(ids) - len(unhealthy), "unhealthy": len(unhealthy)}


def release_capacity(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    """Give back the instances borrowed for rollbacks once none is pending."""
    r = _Rollout(svc, payload["rollout_id"])
    items = r.vms()
    pending = sum(1 for v in items.values() if (v.get("rollback") or {}).get("state") == "queued")
    extra = dict(r.record.get("extra", {}))
    decisions = []
    for target, n in sorted(extra.items()):
        d = plan_scale_back(target.rsplit("/", 1)[-1], n, pending)
        if d is not None:
            before = svc.fleet.capacity(target)
            after = capacity_target(r.record, target, 0)  # absolute: back to the capacity before the rollout
            svc.fleet.set_capacity(target, after)
            observability.capacity_changed(r.id, _short(target), before=before, after=after, reason=d.reason)
            extra[target] = 0
            decisions.append(d)
    r.update(extra=extra)
    r.decide(decisions)
    return {"extra": extra}


def finish(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    """Record the end: every VM's believed configuration, the halt, what was left behind, and a summary."""
    ensure_record(svc, payload)  # a rollout that failed before start_rollout recorded it
    r = _Rollout(svc, payload["rollout_id"])
    items = r.vms()
    error = payload.get("error")
    halted = bool(r.record.get("halted")) or bool(error)  # an error stops the rollout part-way: a halt
    refused = payload.get("refused")
    counts: dict[str, int] = defaultdict(int)
    for v in items.values():
        counts[v["config"]] += 1
        if v.get("rollback"):
            counts["rolled_back"] += 1
    state = ("failed" if error else "refused" if refused else "aborted" if r.record.get("aborted")
             else "halted" if halted else "completed")
    r.update(state=state, phase="done", finished_at=_iso(r.now), error=error, refused=refused, halted=halted)
    reason = (f"rollout {state}: {counts['new']} VMs on the new config, "
              f"{counts['old']} on the old config ({counts['rolled_back']} of them rolled back)"
              + (f"; error: {error}" if error else "") + (f"; {refused}" if refused else ""))
    leaks = [str(x) for x in payload.get("leaks") or []]
    r.decide([Decision("leak", f"left for the janitor: {x}") for x in leaks] + [Decision("finished", reason)])
    publish_outcome(r, "finished", reason, state=state,
                    on_new_config=counts["new"], on_old_config=counts["old"], rolled_back=counts["rolled_back"],
                    halted=halted, leaks=leaks)
    return {"state": state, "halted": halted, "on_new_config": counts["new"], "rolled_back": counts["rolled_back"]}
