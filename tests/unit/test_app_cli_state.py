"""``shadow-rollout watch``'s verdict from a status reply: production done only when every wave ran."""

from __future__ import annotations

import pytest

from shared.appcli import describe, production_state


def body(phase: str, runtime: str = "Running", **status: object) -> dict[str, object]:
    return {"rollout_id": "r1", "phase": phase, "runtime_status": runtime, "custom_status": status}


@pytest.mark.parametrize(("reply", "state"), [
    (body("production", waves=4, waves_done=3), None),
    (body("watch", waves=4, waves_done=4), "done"),
    (body("done", "Completed", waves=4, waves_done=4), "done"),
    (body("halted_in_production", waves=4, waves_done=2), "ended"),
    (body("bake", "Failed"), "ended"),
])
def test_production_is_done_after_the_last_wave_and_ended_when_it_never_will_be(
        reply: dict[str, object], state: str | None) -> None:
    assert production_state(reply) == state


def test_a_rollout_that_failed_during_the_waves_is_watched_but_production_is_not_done() -> None:
    # its changed VMs are still watched (phase "watch"), yet wave 4 never ran: a pipeline must not go on
    failed = body("watch", waves=4, waves_done=3, error="wave 4: operations did not finish within 120 minutes")
    assert production_state(failed) == "ended"
    assert "error: wave 4: operations did not finish" in describe(failed)
