"""The janitor finds what ended rollouts left behind, from the world (shadows by tag, leases, capacity), returns
it, and leaves a running rollout's resources alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from typer.testing import CliRunner

from shared import bootstrap
from shared.adapters.simulator.scenario import parse_scenario
from shared.cli import app
from shared.domain.model import ShadowPlan
from shared.orchestration.cleanup import janitor
from shared.simulation import SimulationRun, simulate

SMALL = {"name": "janitor", "seed": 3, "fleet": {"scale_sets": [{"name": "web", "capacity": 16}]},
         "change": {"id": "jan-1"}, "policy": {"production_watch_minutes": 30}}


def leave_a_mess(run: SimulationRun) -> tuple[str, str]:
    """After a finished rollout: a shadow, a lease and 3 instances it left, and a running rollout's shadow."""
    svc = run.services
    target = svc.store.get_rollout(run.rollout_id)["request"]["targets"][0]  # type: ignore[index]
    vm = sorted(svc.store.get_items(run.rollout_id, "vm"))[0]
    item = svc.store.get_items(run.rollout_id, "vm")[vm]
    info = item["info"]
    plan = ShadowPlan(vm, item["stratum"], info["sku"], info["zone"])
    leaked = svc.shadows.create([plan], rollout_id=run.rollout_id, spot_fallback="regular")[0].shadow_id
    svc.store.put_rollout("other", {"rollout_id": "other", "state": "running", "request": {"targets": []}})
    busy = svc.shadows.create([ShadowPlan(vm, item["stratum"], info["sku"], info["zone"], role="control")],
                              rollout_id="other",
                              spot_fallback="regular")[0].shadow_id
    assert svc.leases.acquire([target], run.rollout_id, now=datetime(2026, 1, 1, tzinfo=UTC)).acquired
    svc.fleet.set_capacity(target, svc.fleet.capacity(target) + 3)
    return leaked, busy


def test_the_janitor_returns_shadows_leases_and_instances_an_ended_rollout_left() -> None:
    run = simulate(parse_scenario(SMALL))
    assert run.outcome["leaks"] == {"shadows": 0, "leases": 0, "extra_instances": 0, "snapshots": 0}
    leaked, busy = leave_a_mess(run)
    svc = run.services
    seen = janitor(svc, dry_run=True)
    assert seen.shadows == [leaked] and seen.leases == 1 and sum(seen.extra_instances.values()) == 3
    assert set(run.world.live_shadows()) == {leaked, busy}  # a dry run changes nothing
    done = janitor(svc)
    assert done.shadows == [leaked] and done.failed == 0
    assert set(run.world.live_shadows()) == {busy}  # the running rollout's shadow stays
    assert run.world.leaked()["extra_instances"] == 0
    target = svc.store.get_rollout(run.rollout_id)["request"]["targets"][0]  # type: ignore[index]
    assert svc.leases.holders([target]) == {}
    again = janitor(svc)
    assert again.shadows == [] and again.leases == 0 and again.extra_instances == {}


def test_shadow_rollout_janitor_reports_what_it_returned() -> None:
    run = simulate(parse_scenario(SMALL))
    leave_a_mess(run)
    bootstrap.install(run.services)
    try:
        result = CliRunner().invoke(app, ["janitor", "--json"])
    finally:
        bootstrap.install(None)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["shadows"]) == 1 and report["leases"] == 1 and sum(report["extra_instances"].values()) == 3
