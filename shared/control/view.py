"""What the rollout page draws beyond the status summary: the timeline, the VMs rolled back, every decision.

Read from the rollout store only (the record, the VM items and the decision log), so it works the same in
Azure and on the local runner. Minutes are counted from the rollout's start, like the decisions' own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from ..ports import RolloutStore

MAX_DECISIONS = 500
MAX_ROLLED_BACK = 200


class Span(BaseModel):
    """One bar of the timeline: a lane, where it starts and ends (minutes), and what it was."""

    lane: str
    start: float
    end: float | None
    label: str
    until: float | None = None  # where a running span is due to end (the production watch's planned end)


class Mark(BaseModel):
    """One instant on the timeline (a rollback, a scale-out, a halt)."""

    lane: str
    at: float
    kind: str
    label: str


class RolledBack(BaseModel):
    vm: str
    state: str
    reason: str


class RolloutView(BaseModel):
    now_minute: float
    spans: list[Span]
    marks: list[Mark]
    rolled_back: list[RolledBack]
    rolled_back_total: int
    decisions: list[dict[str, Any]]
    decisions_total: int


LANES = ("shadows", "bake", "gate", "waves", "watch", "rollbacks", "capacity")
_MARKS = {"rollback_vm": "rollbacks", "recovered": "rollbacks", "restore_unhealthy": "rollbacks",
          "scale_out": "capacity", "scale_in": "capacity", "released": "capacity",
          "halt_before_production": "gate", "halt_in_production": "waves", "aborted": "gate",
          "approved": "gate", "approval_timeout": "gate", "shadow_evicted": "shadows"}


def _minute(started: datetime, iso: str | None) -> float | None:
    if not iso:
        return None
    return round((datetime.fromisoformat(iso) - started) / timedelta(minutes=1), 1)


def _first(decisions: list[dict[str, Any]], *kinds: str) -> float | None:
    return next((float(d["minute"]) for d in decisions if d.get("kind") in kinds), None)


def rollout_view(store: RolloutStore, rollout_id: str, now: datetime, gate_opened_at: str | None = None,
                 watch: tuple[str | None, str | None] = (None, None)) -> RolloutView | None:
    """The timeline and lists of one rollout, or None when the store has no record of it.

    ``gate_opened_at``: when the approval gate opened (the orchestration's status says so while it waits; the
    store records the gate only once it is resolved). ``watch``: when the production watch began and is due to
    end (the orchestration's status again: the watch writes nothing to the store unless it restores a VM)."""
    record = store.get_rollout(rollout_id)
    if record is None or not record.get("started_at"):
        return None
    started = datetime.fromisoformat(record["started_at"])
    end_of_run = _minute(started, record.get("finished_at"))
    now_minute = end_of_run if end_of_run is not None else _minute(started, now.isoformat()) or 0.0
    decisions = store.decisions(rollout_id)
    spans: list[Span] = []
    teardown = _first(decisions, "teardown_shadows")
    if _first(decisions, "plan_shadows") is not None:
        spans.append(Span(lane="shadows", start=0.0, end=teardown, label="shadow pool"))
    baseline = _minute(started, record.get("baseline_start"))
    bake = _minute(started, record.get("shadow_apply_at"))
    decided = _first(decisions, "proceed", "halt_before_production", "dry_run")
    if baseline is not None:
        spans.append(Span(lane="bake", start=baseline, end=bake if bake is not None else decided, label="baseline"))
    if bake is not None:
        spans.append(Span(lane="bake", start=bake, end=decided, label="bake"))
    gate_end = _first(decisions, "approved", "approval_timeout", "aborted")
    gate_start = _minute(started, gate_opened_at)
    if gate_start is not None or isinstance(record.get("approval"), dict):
        start = gate_start if gate_start is not None else decided or 0.0
        spans.append(Span(lane="gate", start=start, end=gate_end, label="approval gate"))
    vms = store.get_items(rollout_id, "vm")
    waves: dict[int, list[float]] = {}
    rolled: list[RolledBack] = []
    for vm_id, item in vms.items():
        at = _minute(started, item.get("applied_at"))
        if at is not None and item.get("wave") is not None:
            waves.setdefault(int(item["wave"]), []).append(at)
        rb = item.get("rollback")
        if isinstance(rb, dict):
            rolled.append(RolledBack(vm=vm_id.rstrip("/").split("/")[-1] if "/" in vm_id else vm_id,
                                     state=str(rb.get("state", "queued")), reason=str(rb.get("reason", ""))))
    wave_watch = float((record.get("policy") or {}).get("wave_watch_minutes", 0))
    for w in sorted(waves):
        first, last = min(waves[w]), max(waves[w])
        spans.append(Span(lane="waves", start=first, end=last + wave_watch, label=f"wave {w + 1}"))
    watch_from, watch_until = _minute(started, watch[0]), _minute(started, watch[1])
    if watch_from is not None:
        watch_end = min(end_of_run, watch_until) if end_of_run is not None and watch_until is not None else end_of_run
        spans.append(Span(lane="watch", start=watch_from, end=watch_end, until=watch_until,
                          label="production watch"))
    extra_from = _first(decisions, "scale_out")
    if extra_from is not None:
        back = [float(d["minute"]) for d in decisions if d.get("kind") in ("scale_in", "released")
                and float(d["minute"]) >= extra_from]
        spans.append(Span(lane="capacity", start=extra_from, end=max(back) if back else None,
                          label="extra instances"))
    marks = [Mark(lane=_MARKS[d["kind"]], at=float(d["minute"]), kind=d["kind"], label=str(d.get("reason", "")))
             for d in decisions if d.get("kind") in _MARKS]
    rolled.sort(key=lambda r: r.vm)
    return RolloutView(now_minute=now_minute, spans=spans, marks=marks, rolled_back=rolled[:MAX_ROLLED_BACK],
                       rolled_back_total=len(rolled), decisions=decisions[-MAX_DECISIONS:],
                       decisions_total=len(decisions))
