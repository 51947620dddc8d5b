"""The rollout orchestrations. They only yield: every decision is made by a pure function in an activity.

    rollout ─┬─ start_rollout (inventory, shadow plan)
             ├─ create_shadows ×chunks → drive_shadow_load → timer(baseline) → apply_to_shadows ×chunks
             ├─ bake: timer → analyse_shadows, until the bake ends or the evidence demands a halt
             ├─ decide → teardown_shadows → (halt) finish
             ├─ prepare (snapshots of at-risk VMs, rollback queue, capacity)
             ├─ wave ×N (sub-orchestration): snapshot_wave ×chunks → apply_wave ×chunks → timer → check_production
             │                                 └─ recover (sub-orchestration) when VMs fail
             ├─ watch (sub-orchestration, continue-as-new): timer → check_production → recover
             └─ release_capacity → finish;  on any error: teardown_shadows, release_capacity, finish(error)

Per-VM data never enters a history: activities keep it in the rollout store and return counts.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from .chunks import chunk_count

ROLLOUT = "rollout_orchestrator"
WAVE = "wave_orchestrator"
WATCH = "watch_orchestrator"
RECOVER = "recover_orchestrator"

WATCH_ROUNDS_PER_GENERATION = 12
VERIFY_MINUTES = 3
RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=30_000, max_number_of_attempts=3)

Orchestration = Generator[Any, Any, Any]


def _after(context: df.DurableOrchestrationContext, minutes: float) -> datetime:
    t: datetime = context.current_utc_datetime
    return t + timedelta(minutes=minutes)


def _status(context: df.DurableOrchestrationContext, status: dict[str, Any], **changes: Any) -> None:
    status.update(changes)
    context.set_custom_status(dict(status))


def rollout_orchestrator(context: df.DurableOrchestrationContext) -> Orchestration:
    request = context.get_input()
    rid = request["rollout_id"]
    status: dict[str, Any] = {"rollout_id": rid}
    _status(context, status, phase="inventory")
    plan = yield context.call_activity("start_rollout", {"request": request})
    policy = plan["policy"]
    base = {"rollout_id": rid}
    torn_down = False
    try:
        _status(context, status, phase="shadow_pool", vms=plan["vms"], strata=plan["strata"])
        shadows = yield context.task_all([context.call_activity_with_retry("create_shadows", RETRY,
                                                                           {**base, "chunk": c})
                                          for c in range(plan["shadow_chunks"])])
        _status(context, status, phase="baseline", shadows=sum(s["created"] for s in shadows))
        yield context.call_activity("drive_shadow_load", base)
        yield context.create_timer(_after(context, policy["baseline_minutes"]))
        _status(context, status, phase="apply_to_shadows")
        yield context.task_all([context.call_activity("apply_to_shadows", {**base, "chunk": c})
                                for c in range(plan["shadow_chunks"])])
        bake_end = _after(context, policy["bake_minutes"])
        while True:
            _status(context, status, phase="bake")
            check_at = min(_after(context, policy["bake_check_minutes"]), bake_end)
            yield context.create_timer(check_at)
            analysis = yield context.call_activity("analyse_shadows", base)
            _status(context, status, analysis=analysis)
            if analysis["halt"] or context.current_utc_datetime >= bake_end:
                break
        decision = yield context.call_activity("decide", base)
        _status(context, status, phase="decided", decision=decision)
        yield context.call_activity("teardown_shadows", base)
        torn_down = True
        if decision["halt"]:
            result = yield context.call_activity("finish", base)
            _status(context, status, phase="halted_before_production")
            return result
        yield context.call_activity_with_retry("prepare", RETRY, base)
        for w, size in enumerate(decision["waves"]):
            _status(context, status, phase="production", wave=w + 1, waves=len(decision["waves"]))
            outcome = yield context.call_sub_orchestrator(
                WAVE, {**base, "wave": w, "chunks": chunk_count(size), "watch_minutes": policy["wave_watch_minutes"]},
                f"{context.instance_id}:wave:{w}")
            if outcome["halt"]:
                _status(context, status, phase="halted_in_production")
                break
        if policy["production_watch_minutes"] > 0:
            _status(context, status, phase="watch")
            until = _after(context, policy["production_watch_minutes"])
            yield context.call_sub_orchestrator(
                WATCH, {**base, "until": until.isoformat(), "interval": policy["watch_interval_minutes"],
                        "generation": 0}, f"{context.instance_id}:watch")
        yield context.call_activity("release_capacity", base)
        result = yield context.call_activity("finish", base)
        _status(context, status, phase="done", result=result)
        return result
    except Exception as exc:
        # Leave nothing behind: shadows deleted, borrowed capacity returned, the record says what happened.
        if not torn_down:
            yield context.call_activity("teardown_shadows", base)
        yield context.call_activity("release_capacity", base)
        result = yield context.call_activity("finish", {**base, "error": str(exc).split("\n")[0][:500]})
        _status(context, status, phase="failed", result=result)
        return result


def wave_orchestrator(context: df.DurableOrchestrationContext) -> Orchestration:
    inp = context.get_input()
    base = {"rollout_id": inp["rollout_id"], "wave": inp["wave"]}
    try:
        yield context.task_all([context.call_activity_with_retry("snapshot_wave", RETRY, {**base, "chunk": c})
                                for c in range(inp["chunks"])])
    except Exception as exc:  # VMs left without a snapshot are excluded by apply_wave, with a decision
        context.set_custom_status({"wave": inp["wave"], "snapshot_error": str(exc).split("\n")[0][:300]})
    applied = yield context.task_all([context.call_activity("apply_wave", {**base, "chunk": c})
                                      for c in range(inp["chunks"])])
    if not any(a["applied"] for a in applied) and any(a.get("excluded") for a in applied):
        yield context.call_activity("halt", {"rollout_id": inp["rollout_id"],
                                             "reason": f"no VM of wave {inp['wave'] + 1} could be snapshotted"})
        return {"halt": True, "failing": 0}
    if not any(a["failed"] for a in applied):  # a failed apply is judged at once; otherwise watch first
        yield context.create_timer(_after(context, inp["watch_minutes"]))
    check = yield context.call_activity("check_production", {**base, "context": "wave"})
    if check["failing"]:
        yield context.call_sub_orchestrator(RECOVER, {"rollout_id": inp["rollout_id"], "batch": check["batch"],
                                                      "chunks": check["chunks"]},
                                            f"{context.instance_id}:recover")
    return {"halt": check["halt"], "failing": check["failing"]}


def watch_orchestrator(context: df.DurableOrchestrationContext) -> Orchestration:
    """Watch production after the last wave; restarts itself as new to keep its history short."""
    inp = context.get_input()
    until = datetime.fromisoformat(inp["until"])
    base = {"rollout_id": inp["rollout_id"]}
    for k in range(WATCH_ROUNDS_PER_GENERATION):
        now: datetime = context.current_utc_datetime
        if now >= until:
            return {"watched_until": inp["until"]}
        yield context.create_timer(min(_after(context, inp["interval"]), until))
        check = yield context.call_activity("check_production", {**base, "context": "watch"})
        if check["failing"]:
            yield context.call_sub_orchestrator(RECOVER, {**base, "batch": check["batch"], "chunks": check["chunks"]},
                                                f"{context.instance_id}:recover:{inp['generation']}:{k}")
    context.continue_as_new({**inp, "generation": inp["generation"] + 1})
    return None


def recover_orchestrator(context: df.DurableOrchestrationContext) -> Orchestration:
    """Capacity first, then restore from snapshots, post-rollback script, health check, capacity back."""
    inp = context.get_input()
    base = {"rollout_id": inp["rollout_id"], "batch": inp["batch"]}
    yield context.call_activity_with_retry("reserve_capacity", RETRY, base)
    yield context.task_all([context.call_activity_with_retry("restore_vms", RETRY, {**base, "chunk": c})
                            for c in range(inp["chunks"])])
    yield context.create_timer(_after(context, VERIFY_MINUTES))
    verified = yield context.call_activity("verify_recovered", base)
    yield context.call_activity("release_capacity", {"rollout_id": inp["rollout_id"]})
    return verified
