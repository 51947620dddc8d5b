"""The rollout page in a real browser, on the local server (the function app's own HTTP functions over a
simulated rollout, stepped phase by phase): every phase renders, Approve approves, Abort aborts, the keyboard
reaches the buttons, and the page logs no error. Screenshots: tests/output/browser/."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from shared.adapters.simulator.scenario import load_scenario
from shared.domain.policy import RolloutPolicy
from shared.localserve import LocalRolloutServer

from ..conftest import SCENARIOS
from .conftest import Page


@pytest.fixture
def server() -> Iterator[LocalRolloutServer]:
    s = LocalRolloutServer(load_scenario(SCENARIOS / "latent-crash.yaml"), speed=0, port=0, approval=True)
    s.start()
    try:
        yield s
    finally:
        s.close()


def status(s: LocalRolloutServer) -> dict[str, Any]:
    with urllib.request.urlopen(s.detail_url) as resp:
        body: dict[str, Any] = json.loads(resp.read())
        return body


def show(p: Page, s: LocalRolloutServer, phase: str) -> None:
    """Step the rollout to ``phase``, open its page, and check what every phase shows."""
    assert s.step_until(phase) == phase
    p.page.goto(s.detail_url)
    p.page.wait_for_selector(f"body[data-phase='{phase}']")
    assert p.page.inner_text("#title") == f"Rollout {s.rollout_id}"
    badge = p.page.inner_text("#overview .badge").lower()
    assert badge == phase.replace("_", " "), badge
    assert p.page.locator("svg.timeline rect").count() >= 1  # at least the shadow pool's bar
    assert p.page.locator("#decisions tbody tr").count() == status(s)["view"]["decisions_total"]
    p.shot(f"phase-{phase}")


def test_page_renders_each_phase_and_approve_approves_from_the_keyboard(page: Page,
                                                                         server: LocalRolloutServer) -> None:
    for phase in ("shadow_pool", "baseline", "bake"):
        show(page, server, phase)
        assert page.page.locator("#approve-button").count() == 0  # only at the gate
        assert page.page.locator("#abort-button").is_visible()
    show(page, server, "awaiting_approval")
    strata = status(server)["rollout"]["strata"]
    assert page.page.locator("#strata tbody tr").count() == len(strata) > 1
    text = page.page.inner_text("#strata tbody")
    assert all(x["evidence"] in text and x["label"] in text for x in strata)  # the judge's evidence, per stratum
    assert "times out" in page.page.inner_text("#approval")
    gate = page.page.locator("svg.timeline rect title", has_text="approval gate: minute")
    assert gate.count() == 1 and gate.text_content().endswith("to now")  # the gate's bar runs while it waits
    page.page.fill("#reason", "bake clean, change reviewed")
    for _ in range(20):  # reach the Approve button with the keyboard alone
        page.page.keyboard.press("Tab")
        if page.page.evaluate("document.activeElement && document.activeElement.id") == "approve-button":
            break
    else:
        pytest.fail("the Approve button cannot be reached with Tab")
    page.page.keyboard.press("Enter")
    page.page.wait_for_selector("#message.ok")
    assert "approve sent" in page.page.inner_text("#message")
    page.shot("approve-sent")
    for phase in ("production", "watch"):
        show(page, server, phase)
    # the production watch is a bar of its own lane, running to now, and the legend says when it ends
    watch_minutes = RolloutPolicy.model_fields["production_watch_minutes"].default  # latent-crash sets no policy
    watch = page.page.locator("svg.timeline rect.span-watch")
    assert watch.count() == 1 and "production watch: minute" in watch.locator("title").text_content()
    [running] = [x for x in status(server)["view"]["spans"] if x["lane"] == "watch"]
    assert running["end"] is None and running["until"] == pytest.approx(running["start"] + watch_minutes, abs=0.1)
    assert f"The production watch ends at minute {running['until']:g}" in page.page.inner_text("#timeline")
    assert server.step_until("done") == "done"
    server.step_until("never")  # the watch's last timers, to the instance's completion
    page.page.goto(server.detail_url)
    page.page.wait_for_selector("body[data-runtime='Completed']")
    body = status(server)
    assert body["custom_status"]["approval"]["outcome"] == "approved"
    assert body["custom_status"]["approval"]["reason"].startswith("approved by local-operator")
    assert page.page.locator("svg.timeline rect").count() >= 4 + body["custom_status"]["waves_done"]
    [watched] = [x for x in body["view"]["spans"] if x["lane"] == "watch"]
    assert watched["end"] == watched["until"] == running["until"]  # the whole watch, ended where it was due
    assert page.page.locator("svg.timeline rect.span-watch").count() == 1
    rolled = body["view"]["rolled_back_total"]
    assert rolled > 0 and page.page.locator("#rolled-back tbody tr").count() == rolled
    assert "ended" in page.page.inner_text("#actions")
    page.shot("phase-done")
    assert page.errors == []


def test_abort_button_aborts_during_the_bake(page: Page, server: LocalRolloutServer) -> None:
    server.step_until("bake")
    page.page.goto(server.detail_url)
    page.page.wait_for_selector("body[data-phase='bake']")
    page.page.fill("#reason", "wrong change window")
    page.page.click("#abort-button")
    page.page.wait_for_selector("#message.ok")
    assert "abort sent" in page.page.inner_text("#message")
    assert server.step_until("aborted") == "aborted"
    page.page.wait_for_selector("body[data-phase='aborted']", timeout=15_000)  # the page refreshed itself
    body = status(server)
    assert body["rollout"]["aborted"]["by"] == "local-operator"
    assert "wrong change window" in body["rollout"]["aborted"]["reason"]
    assert body["rollout"]["state"] is not None and body["custom_status"].get("waves_done") is None
    assert "aborted by local-operator" in page.page.inner_text("#overview")
    page.shot("phase-aborted")
    assert page.errors == []


def test_list_page_links_each_rollout_to_its_page(page: Page, server: LocalRolloutServer) -> None:
    server.step_until("bake")
    page.page.goto(server.base_url + "/rollouts")
    link = page.page.locator(f"#rollouts a:text('{server.rollout_id}')")
    assert link.count() == 1
    link.focus()
    page.page.keyboard.press("Enter")
    page.page.wait_for_selector("body[data-phase='bake']")
    assert page.page.url == server.detail_url
    page.shot("list-to-detail")
    assert page.errors == []


def test_page_loads_nothing_from_outside_the_app(page: Page, server: LocalRolloutServer) -> None:
    requests: list[str] = []
    page.page.on("request", lambda r: requests.append(r.url))
    server.step_until("bake")
    page.page.goto(server.detail_url)
    page.page.wait_for_selector("body[data-phase='bake']")
    page.page.wait_for_timeout(3500)  # one refresh
    assert requests and all(u.startswith(server.base_url) for u in requests), requests
    assert page.errors == []
