"""The throttling checks of ``bench-budget`` are computed from the request log: a give-up after 429s, a request
served while its bucket was empty, and the 429 share are each seen in a log that has them. Its comparison with
``--backend sim`` names where two outcome JSONs part."""

from __future__ import annotations

from typing import Any

from shared.adapters.azure.limits import ARM_BUCKETS, ArmKind
from shared.bench.budget import equals_cell, first_difference, log_checks

VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{}"


def rec(t: float, method: str, path: str, status: int = 200, throttled: bool = False) -> dict[str, Any]:
    return {"t": t, "method": method, "path": path, "api_version": "2024-11-01", "status": status,
            "principal": "p", "throttled": throttled}


def test_a_paced_log_passes_every_check() -> None:
    rate = ARM_BUCKETS[ArmKind.READS].refill_per_second
    log = [rec(k / rate, "GET", VM.format(k)) for k in range(2000)]  # no faster than the refill
    got = log_checks(log)
    assert got["overdrawn_requests"] == 0 and got["failed_by_throttling"] == 0 and got["throttled_429"] == 0
    assert got["arm_requests"] == 2000


def test_requests_served_faster_than_the_budget_allows_are_overdrafts() -> None:
    burst = int(ARM_BUCKETS[ArmKind.READS].capacity)
    log = [rec(0.0, "GET", VM.format(k)) for k in range(burst + 5)]  # 5 past the burst, at the same instant
    assert log_checks(log)["overdrawn_requests"] == 5


def test_a_request_whose_last_answer_is_429_failed_by_throttling_and_429s_count_in_the_share() -> None:
    log = [rec(0.0, "PUT", VM.format(1), 429, True), rec(1.0, "PUT", VM.format(1), 200),
           rec(2.0, "PUT", VM.format(2), 429, True), rec(3.0, "PUT", VM.format(2), 429, True),
           rec(4.0, "POST", "/v1/workspaces/w/query")]  # Log Analytics: not ARM
    got = log_checks(log)
    assert got["failed_by_throttling"] == 1
    assert (got["arm_requests"], got["throttled_429"], got["throttled_share"]) == (4, 3, 0.75)
    assert got["served_arm_writes"] == 1


def outcome(*minutes: float, **fields: Any) -> dict[str, Any]:
    return {"outcome": "halted_in_production", **fields,
            "decisions": [{"kind": "recovered", "minute": m, "reason": "batch healthy"} for m in minutes]}


def test_outcomes_equal_byte_for_byte_have_no_difference() -> None:
    assert first_difference(outcome(1.0, 2.0), outcome(1.0, 2.0)) is None


def test_the_first_differing_decision_is_named_by_its_index() -> None:
    sim, azure = outcome(1.0, 315.6, 327.4), outcome(1.0, 319.0, 329.0)
    got = first_difference(sim, azure)
    assert got == {"decision": 1, "sim": sim["decisions"][1], "azure_sdk": azure["decisions"][1]}
    assert equals_cell({"equals_sim": False, "first_difference": got}) == "no: decision 1"
    assert first_difference(outcome(1.0), outcome(1.0, 2.0)) == {  # one has a decision more
        "decision": 1, "sim": None, "azure_sdk": {"kind": "recovered", "minute": 2.0, "reason": "batch healthy"}}


def test_equal_decisions_and_a_differing_field_name_the_field() -> None:
    got = first_difference(outcome(1.0, duration_minutes=10.0), outcome(1.0, duration_minutes=10.5))
    assert got == {"field": "duration_minutes", "sim": 10.0, "azure_sdk": 10.5}
    assert equals_cell({"equals_sim": False, "first_difference": got}) == "no: field `duration_minutes`"
    assert equals_cell({"equals_sim": True, "first_difference": None}) == "yes"
    # the same fields in another order are not byte-identical either
    order = first_difference({"a": 1, "b": 2}, {"b": 2, "a": 1})
    assert order == {"field": None, "sim": ["a", "b"], "azure_sdk": ["b", "a"]}
    assert equals_cell({"equals_sim": False, "first_difference": order}) == "no: the fields' order"
