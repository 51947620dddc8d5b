"""The HTTP API: start, status, list, approve, abort; the approval gate and its timeout; busy scale sets."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.domain.request import instance_id_for

from .stack import Stack, http, request, sb_message, stack, vmss

MP = pytest.MonkeyPatch


def test_http_start_is_accepted_once_and_a_retry_finds_the_same_rollout(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        status, body = s.request("start_rollout_http", http("POST", "rollouts", request("h1"), as_="op@x"))
        assert status == 202 and body["outcome"] == "started" and body["instance_id"] == "rollout-h1"
        assert body["links"]["status"] == "https://app.example.net/api/rollouts/h1"
        status, body = s.request("start_rollout_http", http("POST", "rollouts", request("h1")))
        assert status == 200 and body["outcome"] == "existing" and body["runtime_status"] == "Pending"
        s.run()
        status, body = s.request("start_rollout_http", http("POST", "rollouts", request("h1")))
        assert status == 200 and body["outcome"] == "existing" and body["runtime_status"] == "Completed"
        assert s.top_level() == ["rollout-h1"]
        req = s.record("h1")["request"]
        assert req["requester"] == "op@x"  # the signed-in caller; the body's "requester" is ignored
        assert req["channel"] == {"kind": "http", "identity": "op@x", "principal_id": None,
                                  "authenticated_by": "app-service"}


@pytest.mark.parametrize(("body", "reason"), [
    (b"rollout please", "request body is not JSON"),
    ({"targets": []}, "request.rollout_id: Field required"),
    ({**request("x"), "change": {"kind": "reboot"}}, "request.change.change_id: Field required"),
])
def test_malformed_http_request_is_a_400_with_the_reason(monkeypatch: MP, body: object, reason: str) -> None:
    with stack(monkeypatch) as s:
        status, out = s.request("start_rollout_http", http("POST", "rollouts", body))
        assert status == 400 and out["rejected_because"] == "malformed" and reason in out["reason"], out
        assert s.top_level() == []


def test_status_shows_each_phase_and_the_store_summary(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        s.request("start_rollout_http", http("POST", "rollouts", request("p1")))
        status, body = s.request("rollout_status_http", http("GET", "rollouts/p1", route_params={"rollout_id": "p1"}))
        assert status == 200 and body["runtime_status"] == "Pending"
        s.run(until_phase=("p1", "production"))
        status, body = s.request("rollout_status_http", http("GET", "rollouts/p1", route_params={"rollout_id": "p1"}))
        assert body["runtime_status"] == "Running" and body["phase"] == "production"
        cs = body["custom_status"]
        assert cs["wave"] == 1 and cs["waves"] == 2 and cs["shadow_results"]["created"] > 0
        assert cs["decision"]["halt"] is False and "capacity" in cs and cs["rollbacks"] == 0
        strata = body["rollout"]["strata"]
        assert strata and all(x["judge"] == "Successful" and x["mean_predicted_failure"] is not None for x in strata)
        s.run()
        _, body = s.request("rollout_status_http", http("GET", "rollouts/p1", route_params={"rollout_id": "p1"}))
        assert body["runtime_status"] == "Completed" and body["phase"] == "done"
        assert body["rollout"]["state"] == "completed" and body["custom_status"]["waves_done"] == 2
        assert s.phases["rollout-p1"] == ["inventory", "shadow_pool", "baseline", "apply_to_shadows", "bake",
                                          "decided", "production", "done"]
        status, body = s.request("rollout_status_http", http("GET", "rollouts/nope",
                                                             route_params={"rollout_id": "nope"}))
        assert status == 404 and body["reason"] == "no rollout nope"


def test_list_shows_recent_rollouts_only_top_level(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        s.request("start_rollout_http", http("POST", "rollouts", request("l1", targets=[vmss("web")])))
        s.request("start_rollout_http", http("POST", "rollouts", request("l2", targets=[vmss("api")])))
        s.run()
        status, body = s.request("list_rollouts_http", http("GET", "rollouts", params={"limit": "10"}))
        assert status == 200 and body["count"] == 2
        assert {r["rollout_id"] for r in body["rollouts"]} == {"l1", "l2"}
        assert all(r["runtime_status"] == "Completed" and r["phase"] == "done" for r in body["rollouts"])
        status, body = s.request("list_rollouts_http", http("GET", "rollouts", params={"limit": "ten"}))
        assert status == 400


def _at_gate(s: Stack, rid: str, **policy: object) -> None:
    s.request("start_rollout_http", http("POST", "rollouts", request(rid, approval_required=True, **policy)))
    s.run(until_phase=(rid, "awaiting_approval"))


def test_approval_gate_waits_for_an_operator_and_approval_lets_production_start(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        _at_gate(s, "g1")
        items = s.services.store.get_items("g1", "vm")
        assert not any("apply" in v for v in items.values())  # nothing in production was touched
        _, body = s.request("rollout_status_http", http("GET", "rollouts/g1", route_params={"rollout_id": "g1"}))
        assert body["phase"] == "awaiting_approval" and body["custom_status"]["approval"]["on_timeout"] == "halt"
        status, body = s.request("approve_rollout_http", http("POST", "rollouts/g1/approve", {"reason": "LGTM"},
                                                              route_params={"rollout_id": "g1"}, as_="carol"))
        assert status == 202 and body["by"] == "carol"
        s.run()
        rec = s.record("g1")
        assert rec["state"] == "completed" and rec["approval"]["by"] == "carol"
        approved = [d for d in s.services.store.decisions("g1") if d["kind"] == "approved"]
        assert len(approved) == 1 and approved[0]["reason"].startswith("approved by carol after 0 minutes: LGTM")
        status, body = s.request("approve_rollout_http", http("POST", "rollouts/g1/approve",
                                                              route_params={"rollout_id": "g1"}, as_="carol"))
        assert status == 409 and "has ended" in body["reason"]


def test_approve_outside_the_gate_is_refused(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        s.request("start_rollout_http", http("POST", "rollouts", request("g0", approval_required=True)))
        s.run(until_phase=("g0", "bake"))
        status, body = s.request("approve_rollout_http", http("POST", "rollouts/g0/approve",
                                                              route_params={"rollout_id": "g0"}, as_="carol"))
        assert status == 409 and body["reason"] == "rollout g0 is not awaiting approval (phase bake)"


def test_gate_timeout_halts_before_production_by_default(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        _at_gate(s, "t1", approval_timeout_minutes=30)
        opened = s.runner.now
        s.run()
        rec = s.record("t1")
        assert rec["state"] == "halted" and rec["phase"] == "done"
        assert not any("apply" in v for v in s.services.store.get_items("t1", "vm").values())
        [d] = [d for d in s.services.store.decisions("t1") if d["kind"] == "approval_timeout"]
        assert "no approval within approval_timeout_minutes 30" in d["reason"] and "halting" in d["reason"]
        inst = s.runner.instances["rollout-t1"]
        assert inst.completed_at is not None and (inst.completed_at - opened).total_seconds() >= 30 * 60
        [final] = [e for e in s.outcomes.of("t1") if e["type"] == "rollout.finished"]
        assert final["state"] == "halted"


def test_gate_timeout_proceeds_when_policy_says_so(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        _at_gate(s, "t2", approval_timeout_minutes=15, on_approval_timeout="proceed")
        s.run()
        assert s.record("t2")["state"] == "completed"
        assert "proceeding" in next(d["reason"] for d in s.services.store.decisions("t2")
                                    if d["kind"] == "approval_timeout")


def test_abort_at_the_gate_halts_before_production(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        _at_gate(s, "a1")
        status, _ = s.request("abort_rollout_http", http("POST", "rollouts/a1/abort",
                                                         {"by": "mallory", "reason": "freeze"},
                                                         route_params={"rollout_id": "a1"}, as_="dave"))
        assert status == 202
        s.run()
        rec = s.record("a1")
        assert rec["state"] == "aborted" and rec["aborted"]["by"] == "dave"  # the body's "by" is ignored
        assert not any("apply" in v for v in s.services.store.get_items("a1", "vm").values())
        assert "aborted by dave at the approval gate after 0 minutes: freeze" in " ".join(
            d["reason"] for d in s.services.store.decisions("a1"))


def test_abort_during_the_bake_stops_before_production_and_removes_the_shadows(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        s.request("start_rollout_http", http("POST", "rollouts", request("a2")))
        s.run(until_phase=("a2", "bake"))
        s.request("abort_rollout_http", http("POST", "rollouts/a2/abort", as_="erin",
                                             route_params={"rollout_id": "a2"}))
        s.run()
        rec = s.record("a2")
        assert rec["state"] == "aborted" and rec["phase"] == "done"
        assert "decide" not in [d["kind"] for d in s.services.store.decisions("a2")]
        assert not any("apply" in v for v in s.services.store.get_items("a2", "vm").values())
        assert all(v.get("deleted") for k, v in s.services.store.get_items("a2", "shadow").items()
                   if not k.startswith("failed:"))
        assert [e["type"] for e in s.outcomes.of("a2")] == ["rollout.aborted", "rollout.finished"]


def test_abort_during_the_waves_lets_the_running_wave_finish_and_starts_no_other(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        s.request("start_rollout_http", http("POST", "rollouts", request("a3")))
        s.run(until_phase=("a3", "production"))
        s.request("abort_rollout_http", http("POST", "rollouts/a3/abort", as_="frank",
                                             route_params={"rollout_id": "a3"}))
        s.run()
        rec = s.record("a3")
        assert rec["state"] == "aborted" and rec["halted"]
        items = s.services.store.get_items("a3", "vm")
        waves = {int(v["wave"]) for v in items.values() if "apply" in v}
        assert waves == {0}, "only the first wave was applied"
        assert any("wave" in v and int(v["wave"]) == 1 and "apply" not in v for v in items.values())
        assert "during wave 1 of 2 (that wave finished; no further wave)" in " ".join(
            d["reason"] for d in s.services.store.decisions("a3"))
        assert "rollout-a3:wave:1" not in s.runner.instances


def test_abort_after_the_end_is_refused(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        s.request("start_rollout_http", http("POST", "rollouts", request("a4")))
        s.run()
        status, body = s.request("abort_rollout_http", http("POST", "rollouts/a4/abort",
                                                            route_params={"rollout_id": "a4"}))
        assert status == 409 and "has ended (Completed, phase done)" in body["reason"]


def test_a_second_rollout_on_a_busy_scale_set_is_refused_with_the_holder(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        s.request("start_rollout_http", http("POST", "rollouts", request("first", targets=[vmss("web")])))
        s.run(until_phase=("first", "bake"))
        status, body = s.request("start_rollout_http", http("POST", "rollouts",
                                                            request("second", targets=[vmss("web"), vmss("api")])))
        assert status == 409 and body["rejected_because"] == "busy"
        assert "1 target scale sets are held: web by rollout first" in body["reason"]
        assert "policy on_busy is 'refuse'" in body["reason"]
        assert instance_id_for("second") not in s.runner.instances
        s.run()
        status, body = s.request("start_rollout_http", http("POST", "rollouts",
                                                            request("second", targets=[vmss("web"), vmss("api")])))
        assert status == 202  # released when the first finished


def test_a_queued_rollout_waits_for_its_scale_set_then_runs(monkeypatch: MP) -> None:
    # the simulator models one change per VM, so the first rollout holds the scale set at its gate and is aborted
    with stack(monkeypatch) as s:
        s.deliver(sb_message(request("q1", targets=[vmss("web")], approval_required=True), message_id="q1"))
        s.run(until_phase=("q1", "awaiting_approval"))
        s.deliver(sb_message(request("q2", targets=[vmss("web")], on_busy="queue", busy_retry_minutes=5),
                             message_id="q2"))
        s.run(until_phase=("q2", "waiting_for_targets"))
        s.runner.run(until=s.runner.now + timedelta(minutes=12))  # two more retries while q1 still holds web
        s.request("abort_rollout_http", http("POST", "rollouts/q1/abort", route_params={"rollout_id": "q1"}))
        s.run()
        first, second = s.record("q1"), s.record("q2")
        assert first["state"] == "aborted" and second["state"] == "completed"
        queued = [d for d in s.services.store.decisions("q2") if d["kind"] == "queued"]
        assert len(queued) >= 3 and "web by rollout q1" in queued[0]["reason"]
        claimed = next(d for d in s.services.store.decisions("q2") if d["kind"] == "claimed")
        assert "after waiting" in claimed["reason"]
        q2_first_apply = min(v["applied_at"] for v in s.services.store.get_items("q2", "vm").values()
                             if "applied_at" in v)
        assert q2_first_apply > first["finished_at"]


def test_a_queued_rollout_gives_up_after_busy_wait_minutes(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        s.request("start_rollout_http", http("POST", "rollouts", request("h", targets=[vmss("web")],
                                                                         approval_required=True)))
        s.run(until_phase=("h", "awaiting_approval"))  # holds web for up to four hours
        s.request("start_rollout_http", http("POST", "rollouts", request("w", targets=[vmss("web")], on_busy="queue",
                                                                         busy_wait_minutes=20,
                                                                         busy_retry_minutes=10)))
        s.run(until_phase=("w", "refused"))
        rec = s.record("w")
        assert rec["state"] == "refused" and "waited 20 minutes >= busy_wait_minutes 20" in rec["refused"]
        [final] = [e for e in s.outcomes.of("w") if e["type"] == "rollout.finished"]
        assert final["state"] == "refused"


def test_production_done_is_published_after_the_last_wave_and_before_the_watch(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        s.request("start_rollout_http", http("POST", "rollouts", request("pd1", production_watch_minutes=30,
                                                                         watch_interval_minutes=10)))
        s.run(until_phase=("pd1", "watch"))
        types = [e["type"] for e in s.outcomes.events if e["rollout_id"] == "pd1"]
        assert types == ["rollout.production_done"]
        done = s.outcomes.events[-1]
        assert done["event_id"] == "pd1:production_done" and done["summary"]["watch_minutes"] == 30
        assert done["summary"]["changed"] == sum(1 for v in s.services.store.get_items("pd1", "vm").values()
                                                 if "apply" in v) > 0
        s.run()
        types = [e["type"] for e in s.outcomes.events if e["rollout_id"] == "pd1"]
        assert types == ["rollout.production_done", "rollout.finished"]


def test_no_production_done_when_the_rollout_is_aborted_before_production(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        s.request("start_rollout_http", http("POST", "rollouts", request("pd2", approval_required=True)))
        s.run(until_phase=("pd2", "awaiting_approval"))
        status, _ = s.request("abort_rollout_http", http("POST", "rollouts/pd2/abort", {"reason": "no"},
                                                         route_params={"rollout_id": "pd2"}))
        assert status == 202
        s.run()
        types = [e["type"] for e in s.outcomes.events if e["rollout_id"] == "pd2"]
        assert "rollout.production_done" not in types and types[-1] == "rollout.finished"


def test_a_browser_gets_the_page_and_an_api_client_the_json(monkeypatch: MP) -> None:
    import re

    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    with stack(monkeypatch) as s:
        s.request("start_rollout_http", http("POST", "rollouts", request("pg1")))
        s.run(until_phase=("pg1", "bake"))
        for roles, actions in ((("Rollout.Request",), []),  # a reader who may neither approve nor abort: no buttons
                               (("Rollout.Operate",), ["abort"]),
                               (("Rollout.Approve", "Rollout.Operate"), ["abort", "approve"])):
            req = http("GET", "rollouts/pg1", route_params={"rollout_id": "pg1"}, headers={"accept": browser},
                       as_="op@example.com", roles=roles)
            resp = s.call("rollout_status_http", req)
            assert resp.status_code == 200 and resp.mimetype == "text/html"
            assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
            page = resp.get_body().decode()
            config = re.search(r'<script type="application/json" id="config">(.*?)</script>', page, re.S)
            assert config is not None and json.loads(config.group(1))["actions"] == actions
            status = re.search(r'<script type="application/json" id="status">(.*?)</script>', page, re.S)
            assert status is not None and json.loads(status.group(1))["phase"] == "bake"
        resp = s.call("list_rollouts_http", http("GET", "rollouts", headers={"accept": browser}))
        assert resp.mimetype == "text/html" and "pg1" in resp.get_body().decode()
        status, body = s.request("rollout_status_http", http("GET", "rollouts/pg1", route_params={"rollout_id": "pg1"},
                                                             headers={"accept": "application/json"}))
        assert status == 200 and body["phase"] == "bake" and body["view"]["spans"][0]["lane"] == "shadows"
        status, body = s.request("rollout_status_http", http("GET", "rollouts/nope", headers={"accept": browser},
                                                             route_params={"rollout_id": "nope"}))
        assert status == 404 and body["reason"] == "no rollout nope"  # errors stay JSON
