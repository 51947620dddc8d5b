"""Who may act: identity only from App Service Authentication (or the documented function-key mode), app roles
for each action, four eyes on approvals, and a body that never names who acted."""

from __future__ import annotations

import pytest

from shared.control.auth import AUTH_MODE_SETTING

from .stack import Stack, http, request, sb_message, stack

MP = pytest.MonkeyPatch


def _at_gate(s: Stack, rid: str, as_: str = "requester@example.com", **policy: object) -> None:
    status, body = s.request("start_rollout_http", http("POST", "rollouts", request(rid, approval_required=True,
                                                                                     **policy), as_=as_))
    assert status == 202, body
    s.run(until_phase=(rid, "awaiting_approval"))


def _approve(s: Stack, rid: str, **kw: object) -> tuple[int, dict[str, object]]:
    return s.request("approve_rollout_http", http("POST", f"rollouts/{rid}/approve", {"reason": "ok"},
                                                  route_params={"rollout_id": rid}, **kw))  # type: ignore[arg-type]


def test_approve_without_the_approve_role_is_403_and_recorded(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        _at_gate(s, "r1")
        status, body = _approve(s, "r1", as_="ops@example.com", roles=["Rollout.Request", "Rollout.Operate"])
        assert status == 403 and body["code"] == "forbidden" and "needs the app role Rollout.Approve" in body["reason"]
        assert s.phase("r1") == "awaiting_approval"
        [rec] = [r for r in s.intake_records("rejected").values() if r["source"] == "http-approve"]
        assert rec["kind"] == "forbidden" and rec["rollout_id"] == "r1"


def test_the_requester_cannot_approve_their_own_rollout_with_four_eyes(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        _at_gate(s, "r2", as_="dana@example.com")
        status, body = _approve(s, "r2", as_="DANA@example.com")  # identities compare case-insensitively
        assert status == 403 and body["reason"].startswith("four eyes: DANA@example.com asked for this rollout")
        status, body = _approve(s, "r2", as_="erin@example.com", roles=["Rollout.Approve"])
        assert status == 202 and body["by"] == "erin@example.com"
        s.run()
        assert s.record("r2")["approval"]["by"] == "erin@example.com"


def test_the_claimed_requester_of_a_message_cannot_approve_it_either(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        s.deliver(sb_message({**request("r3", approval_required=True), "requester": "pipeline@example.com"}))
        s.run(until_phase=("r3", "awaiting_approval"))
        req = s.record("r3")["request"]
        assert req["claimed_requester"] == "pipeline@example.com"
        assert req["channel"]["kind"] == "service-bus" and req["channel"]["authenticated_by"] == "service-bus"
        status, _ = _approve(s, "r3", as_="pipeline@example.com")
        assert status == 403


def test_a_request_cannot_waive_four_eyes_for_itself(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        status, body = s.request("start_rollout_http", http("POST", "rollouts", request("r4", four_eyes=False)))
        assert status == 403 and body["rejected_because"] == "forbidden" and "four_eyes" in body["reason"]
        assert s.top_level() == []


def test_body_by_and_requester_are_ignored(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        status, _ = s.request("start_rollout_http", http("POST", "rollouts", {
            **request("r5", approval_required=True), "requester": "someone-else@example.com",
            "channel": {"kind": "cli", "identity": "forged"}}, as_="alice@example.com"))
        assert status == 202
        s.run(until_phase=("r5", "awaiting_approval"))
        req = s.record("r5")["request"]
        assert req["requester"] == "alice@example.com" and req["channel"]["identity"] == "alice@example.com"
        status, body = s.request("approve_rollout_http", http("POST", "rollouts/r5/approve", {"by": "bob"},
                                                              route_params={"rollout_id": "r5"},
                                                              as_="alice@example.com"))
        assert status == 403  # naming someone else in the body does not get around four eyes
        status, body = s.request("approve_rollout_http", http("POST", "rollouts/r5/approve", {"by": "alice"},
                                                              route_params={"rollout_id": "r5"}, as_="bob@example.com"))
        assert status == 202 and body["by"] == "bob@example.com"


def test_start_without_the_request_role_is_403_and_not_signed_in_is_401(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        status, body = s.request("start_rollout_http", http("POST", "rollouts", request("r6"), roles=["Reader"]))
        assert status == 403 and "Rollout.Request" in body["reason"]
        status, body = s.request("start_rollout_http", http("POST", "rollouts", request("r6"), as_=None))
        assert status == 401 and body["rejected_because"] == "unauthenticated"
        status, body = s.request("rollout_status_http", http("GET", "rollouts/r6", route_params={"rollout_id": "r6"},
                                                             roles=[]))
        assert status == 403
        assert s.top_level() == []


def test_without_an_auth_mode_the_control_routes_refuse_and_say_which_setting(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        monkeypatch.delenv(AUTH_MODE_SETTING)
        status, body = s.request("start_rollout_http", http("POST", "rollouts", request("r7")))
        assert status == 401 and AUTH_MODE_SETTING in body["reason"]
        status, body = s.request("list_rollouts_http", http("GET", "rollouts"))
        assert status == 401 and AUTH_MODE_SETTING in body["reason"]


def test_function_key_mode_records_the_anonymous_key_holder_and_ignores_a_forged_principal(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        monkeypatch.setenv(AUTH_MODE_SETTING, "function-key")
        status, _ = s.request("start_rollout_http", http("POST", "rollouts", request("r8", approval_required=True),
                                                         as_="forged-admin@example.com",
                                                         headers={"X-MS-CLIENT-PRINCIPAL-NAME": "forged"}))
        assert status == 202
        s.run(until_phase=("r8", "awaiting_approval"))
        req = s.record("r8")["request"]
        assert req["requester"] == "anonymous key holder"
        assert req["channel"] == {"kind": "http", "identity": "anonymous key holder", "principal_id": None,
                                  "authenticated_by": "function-key"}
        status, body = _approve(s, "r8", as_="someone@example.com")  # the same anonymous key holder: four eyes
        assert status == 403 and "four eyes" in body["reason"]
