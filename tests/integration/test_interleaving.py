"""The activities of a fan-out interleave at their store calls, in an order a seed picks; the outcome does not move.

In Azure the chunks of ``create_shadows``, ``snapshot_wave``, ``apply_wave`` and ``restore_vms`` run at the
same time and meet in the rollout store. The local runner interleaves them the same way (one at a time, handing
over at every store call to the activity its seeded generator picks), so these runs go through many different
orders of the same reads and writes. Each writer has rows of its own and every update names the version it
read, so the outcome is the same whatever the order, and the same as running them one after another.

The scenario stays under ARM's write budget: where a fan-out's writes exceed it (shared/adapters/azure/limits.py),
which chunk waits for tokens depends on the order, in Azure as here, and so does the last minute of that fan-out.
"""

from __future__ import annotations

import json

from shared.adapters.simulator.scenario import load_scenario
from shared.scenarios import default_scenario_path
from shared.simulation import simulate


def test_one_scenario_and_seed_give_the_same_outcome_under_every_seeded_interleaving() -> None:
    demo = load_scenario(default_scenario_path())
    # a two-hour watch: the waves' and the watch's rollbacks, before the hours-later crashes would withdraw the
    # change from 200 VMs at once (more writes than ARM's burst; see the module's docstring); the policy's fixed
    # waves spread the changes over most of an hour, so those crashes come one by one
    scenario = demo.model_copy(update={"policy": {**demo.policy, "production_watch_minutes": 120,
                                                  "adaptive_waves": False}})
    sequential = simulate(scenario, sequential=True)
    outcomes, histories = [], []
    for interleave in (None, 1, 2):  # None: the default, drawn from the run's seed
        run = simulate(scenario, interleave=interleave)
        assert run.interleaver is not None and run.interleaver.switches > 0  # the activities did interleave
        outcomes.append(json.dumps(run.outcome, sort_keys=True))
        histories.append(run.interleaver.history)
    assert len({tuple(h) for h in histories}) == 3  # three different orders of the same reads and writes
    assert outcomes == [json.dumps(sequential.outcome, sort_keys=True)] * 3
    # shadows, waves and rollbacks: every fan-out ran
    assert sequential.outcome["vms"]["rolled_back"] > 0 and sequential.outcome["vms"]["unknown_state"] == 0
