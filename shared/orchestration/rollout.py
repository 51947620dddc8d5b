"""The rollout orchestrations. They only yield: every decision is made by a pure function in an activity.

    rollout ─┬─ start_rollout (inventory, shadow plan) → claim_targets (lease; queue behind or refuse)
             ├─ create_shadows ×chunks → drive_shadow_load → timer(baseline) → apply_to_shadows ×chunks
             ├─ bake: timer → analyse_shadows, until the bake ends or the evidence demands a halt
             ├─ decide → teardown_shadows → (halt) finish
             ├─ gate, when policy.approval_required: approve | abort | timer → resolve_gate
             ├─ prepare (snapshots of at-risk VMs, rollback queue, capacity)
             ├─ wave ×N (sub-orchestration): snapshot_wave ×chunks → apply_wave ×chunks → timer → check_production
             │                                 └─ recover (sub-orchestration) when VMs fail
             ├─ watch (sub-orchestration, continue-as-new): timer → check_production → recover
             └─ release_capacity → finish;  on any error: teardown_shadows, release_capacity, finish(error)

An operator's ``abort`` event is raced against the bake's timers, the gate, and each wave: it stops the
rollout before the next VM would be changed (a wave already running finishes and is checked and recovered;
the production watch of changed VMs still runs, since it only restores failing VMs).

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
CLEANUP_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=60_000, max_number_of_attempts=5)
"""Teardown, capacity and lease release: retried longer (the Python SDK's RetryOptions carries no back-off
coefficient, so the extension waits the same minute between attempts); what still fails is recorded as a leak for
the janitor, never raised out of the rollout's error path."""

Orchestration = Generator[Any, Any, Any]


def _after(context: df.DurableOrchestrationContext, minutes: float) -> datetime:
    t: datetime = context.current_utc_datetime
    return t + timedelta(minutes=minutes)


def _first_line(exc: BaseException, limit: int = 500) -> str:
    return str(exc).split("\n")[0].strip()[:limit]


def _cleanup(context: df.DurableOrchestrationContext, activity: str, payload: dict[str, Any],
             leaks: list[str]) -> Orchestration:
    """Run a cleanup activity with back-off; if it still fails, note a leak and carry on (never raise)."""
    try:
        result = yield context.call_activity_with_retry(activity, CLEANUP_RETRY, payload)
    except Exception as exc:
        leaks.append(f"{activity}: {_first_line(exc, 300)}")
        return None
    return result


def _end(context: df.DurableOrchestrationContext, payload: dict[str, Any], leaks: list[str]) -> Orchestration:
    """Release the leases, then record the end (with any leak) and publish the outcome event."""
    yield from _cleanup(context, "release_leases", {"rollout_id": payload["rollout_id"]}, leaks)
    result = yield context.call_activity_with_retry("finish", CLEANUP_RETRY, {**payload, "leaks": leaks})
    return result


def _status(context: df.DurableOrchestrationContext, status: dict[str, Any], **changes: Any) -> None:
    status.update(changes)
    context.set_custom_status(dict(status))


def _claim(context: df.DurableOrchestrationContext, status: dict[str, Any], base: dict[str, Any],
           abort: Any) -> Orchestration:
    """Lease the target scale sets; while another rollout holds one, wait (queue) or give up (refuse)."""
    claim = yield context.call_activity("claim_targets", base)
    while not claim["claimed"] and claim["retry_minutes"] is not None:
        _status(context, status, phase="waiting_for_targets", reason=claim["reason"])
        timer = context.create_timer(_after(context, claim["retry_minutes"]))
        winner = yield context.task_any([timer, abort])
        if winner == abort:
            timer.cancel()
            by = abort.result.get("by", "unknown") if isinstance(abort.result, dict) else "unknown"
            return {"claimed": False, "retry_minutes": None, "reason": f"aborted by {by} while waiting for targets"}
        claim = yield context.call_activity("claim_targets", base)
    return claim


def _approval_gate(context: df.DurableOrchestrationContext, status: dict[str, Any], base: dict[str, Any],
                   policy: dict[str, Any], abort: Any) -> Orchestration:
    """Race an operator's approve or abort against the gate's timeout; the timer is cancelled if it lost."""
    opened = context.current_utc_datetime
    deadline = _after(context, policy["approval_timeout_minutes"])
    _status(context, status, phase="awaiting_approval",
            approval={"opened_at": opened.isoformat(), "timeout_at": deadline.isoformat(),
                      "on_timeout": policy["on_approval_timeout"]})
    timeout = context.create_timer(deadline)
    approve = context.wait_for_external_event("approve")
    winner = yield context.task_any([approve, abort, timeout])
    if winner == timeout:
        outcome, event = "timed_out", None
    else:
        timeout.cancel()
        outcome, event = ("approved", approve.result) if winner == approve else ("aborted", abort.result)
    gate = yield context.call_activity("resolve_gate", {**base, "outcome": outcome, "event": event,
                                                        "opened_at": opened.isoformat()})
    _status(context, status, approval={**status["approval"], "outcome": outcome, "reason": gate["reason"]})
    return gate


def rollout_orchestrator(context: df.DurableOrchestrationContext) -> Orchestration:
    request = context.get_input()
    rid = request["rollout_id"]
    status: dict[str, Any] = {"rollout_id": rid}
    _status(context, status, phase="inventory")
    base = {"rollout_id": rid}
    leaks: list[str] = []
    try:
        plan = yield context.call_activity_with_retry("start_rollout", RETRY, {"request": request})
    except Exception as exc:  # an accepted request still ends with a record and an outcome event
        result = yield from _end(context, {**base, "error": _first_line(exc), "request": request}, leaks)
        _status(context, status, phase="failed", result=result)
        return result
    policy = plan["policy"]
    abort = context.wait_for_external_event("abort")
    claim = yield from _claim(context, status, base, abort)
    if not claim["claimed"]:
        result = yield from _end(context, {**base, "refused": claim["reason"]}, leaks)
        _status(context, status, phase="refused", reason=claim["reason"], result=result)
        return result
    torn_down = False
    in_production = False
    try:
        _status(context, status, phase="shadow_pool", vms=plan["vms"], strata=plan["strata"])
        shadows = yield context.task_all([context.call_activity_with_retry("create_shadows", RETRY,
                                                                           {**base, "chunk": c})
                                          for c in range(plan["shadow_chunks"])])
        created = sum(s["created"] for s in shadows)
        _status(context, status, phase="baseline", shadows=created,
                shadow_results={"created": created, "failed": sum(s["failed"] for s in shadows),
                                "regular_price": sum(s["regular"] for s in shadows)})
        yield context.call_activity("drive_shadow_load", base)
        yield context.create_timer(_after(context, policy["baseline_minutes"]))
        _status(context, status, phase="apply_to_shadows")
        yield context.task_all([context.call_activity("apply_to_shadows", {**base, "chunk": c})
                                for c in range(plan["shadow_chunks"])])
        bake_end = _after(context, policy["bake_minutes"])
        while True:
            _status(context, status, phase="bake")
            check_at = min(_after(context, policy["bake_check_minutes"]), bake_end)
            timer = context.create_timer(check_at)
            winner = yield context.task_any([timer, abort])
            if winner == abort:
                timer.cancel()
                break
            analysis = yield context.call_activity("analyse_shadows", base)
            _status(context, status, analysis=analysis)
            if analysis["halt"] or context.current_utc_datetime >= bake_end:
                break
        if abort.is_completed:
            yield from _cleanup(context, "teardown_shadows", base, leaks)
            torn_down = True
            yield context.call_activity("abort_rollout", {**base, "event": abort.result,
                                                          "where": "before production (during the bake)"})
            result = yield from _end(context, base, leaks)
            _status(context, status, phase="aborted", result=result)
            return result
        decision = yield context.call_activity("decide", base)
        _status(context, status, phase="decided", decision=decision)
        yield from _cleanup(context, "teardown_shadows", base, leaks)
        torn_down = True
        if decision["halt"]:
            result = yield from _end(context, base, leaks)
            _status(context, status, phase="halted_before_production", result=result)
            return result
        if policy.get("approval_required"):
            gate = yield from _approval_gate(context, status, base, policy, abort)
            if not gate["proceed"]:
                result = yield from _end(context, base, leaks)
                _status(context, status, phase="halted_before_production", result=result)
                return result
        elif abort.is_completed:
            yield context.call_activity("abort_rollout", {**base, "event": abort.result,
                                                          "where": "before production (after the decision)"})
            result = yield from _end(context, base, leaks)
            _status(context, status, phase="aborted", result=result)
            return result
        in_production = True  # from here on VMs may be changed (prepare snapshots, the waves apply)
        prepared = yield context.call_activity_with_retry("prepare", RETRY, base)
        _status(context, status, capacity={"extra": prepared.get("extra", {})}, rollbacks=0)
        for w, size in enumerate(decision["waves"]):
            if abort.is_completed:
                yield context.call_activity("abort_rollout", {**base, "event": abort.result, "in_production": True,
                                                              "where": f"before wave {w + 1} of "
                                                                       f"{len(decision['waves'])}"})
                _status(context, status, phase="halted_in_production", aborted=True)
                break
            _status(context, status, phase="production", wave=w + 1, waves=len(decision["waves"]))
            wave = context.call_sub_orchestrator(
                WAVE, {**base, "wave": w, "chunks": chunk_count(size), "watch_minutes": policy["wave_watch_minutes"]},
                f"{context.instance_id}:wave:{w}")
            yield context.task_any([wave, abort])
            outcome = yield wave  # an abort lets the running wave finish: its VMs are checked and recovered
            _status(context, status, rollbacks=status.get("rollbacks", 0) + outcome["failing"],
                    waves_done=w + 1)
            if outcome["halt"]:
                _status(context, status, phase="halted_in_production")
                break
            if abort.is_completed:
                yield context.call_activity("abort_rollout", {**base, "event": abort.result, "in_production": True,
                                                              "where": f"during wave {w + 1} of "
                                                                       f"{len(decision['waves'])} (that wave "
                                                                       "finished; no further wave)"})
                _status(context, status, phase="halted_in_production", aborted=True)
                break
        if policy["production_watch_minutes"] > 0:
            _status(context, status, phase="watch")
            until = _after(context, policy["production_watch_minutes"])
            yield context.call_sub_orchestrator(
                WATCH, {**base, "until": until.isoformat(), "interval": policy["watch_interval_minutes"],
                        "generation": 0}, f"{context.instance_id}:watch")
        released = yield from _cleanup(context, "release_capacity", base, leaks)
        result = yield from _end(context, base, leaks)
        _status(context, status, phase="done", result=result,
                capacity={"extra": (released or {}).get("extra", {})})
        return result
    except Exception as exc:
        # Leave nothing behind: shadows deleted, borrowed capacity returned, the record says what happened.
        # VMs already changed are not abandoned: production is still watched, and failing VMs restored.
        error = _first_line(exc)
        if not torn_down:
            yield from _cleanup(context, "teardown_shadows", base, leaks)
        if in_production and policy["production_watch_minutes"] > 0:
            _status(context, status, phase="watch", error=error)
            try:
                yield context.call_sub_orchestrator(
                    WATCH, {**base, "until": _after(context, policy["production_watch_minutes"]).isoformat(),
                            "interval": policy["watch_interval_minutes"], "generation": 0},
                    f"{context.instance_id}:watch-after-error")
            except Exception as watch_exc:
                error += f"; the watch failed too: {_first_line(watch_exc, 200)}"
        yield from _cleanup(context, "release_capacity", base, leaks)
        result = yield from _end(context, {**base, "error": error}, leaks)
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
    # a batch ARM refused as a whole changed nothing and is safe to retry: apply_wave skips applied VMs
    applied = yield context.task_all([context.call_activity_with_retry("apply_wave", RETRY, {**base, "chunk": c})
                                      for c in range(inp["chunks"])])
    if not any(a["applied"] for a in applied) and any(a.get("excluded") for a in applied):
        yield context.call_activity("halt", {"rollout_id": inp["rollout_id"],
                                             "reason": f"no VM of wave {inp['wave'] + 1} could be snapshotted"})
        return {"halt": True, "failing": 0}
    if not any(a["failed"] for a in applied):  # a failed apply is judged at once; otherwise watch first
        yield context.create_timer(_after(context, inp["watch_minutes"]))
    check = yield context.call_activity("check_production", {**base, "context": "wave",
                                                             "check": f"{context.instance_id}:check"})
    if check["failing"]:
        yield context.call_sub_orchestrator(RECOVER, {"rollout_id": inp["rollout_id"], "batch": check["batch"],
                                                      "chunks": check["chunks"]},
                                            f"{context.instance_id}:recover")
    # the wave's VMs passed (or were restored): borrow only what the rollbacks still expected need
    yield from _cleanup(context, "settle_capacity", {"rollout_id": inp["rollout_id"]}, [])
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
        check = yield context.call_activity("check_production", {**base, "context": "watch",
                                                                 "check": f"{context.instance_id}:"
                                                                          f"{inp['generation']}:{k}"})
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
    # a failure here is not the recovery's: the rollout's own release at its end gives the instances back
    yield from _cleanup(context, "release_capacity", {"rollout_id": inp["rollout_id"]}, [])
    return verified
