"""Throttling at scale on the Azure SDK adapters: one rollout per fleet size through ``--backend azure-sdk``
(the adapters over the in-process stand-in, under ARM's and Compute's budgets), judged from its request log.

Four checks, each computed from the log (``--azure-log``'s records), not from the adapters' own account:

* *operations failed by throttling*: a request whose last answer is 429 (the client gave up on it);
* *overdrawn*: the served ARM requests replayed through a fresh :class:`~shared.adapters.azure.limits.Budget` at
  their logged times; one served while a bucket it draws on was empty is an overdraft;
* *429 share*: ARM requests answered 429 over all ARM requests (the adapters pace, so the stand-in is not the
  only guard: at most 1%);
* the rollout's simulated duration beside the budget-derived floor of its served ARM writes
  (``limits.write_floor_seconds``).

Each size also runs ``--backend sim`` on the same fleet: ``equals_sim`` says whether the two outcome JSONs are
byte-identical (the scenario contract, §2, for fault-free scenarios), and ``first_difference`` names where they
part when they do (the first differing decision, else the first differing field).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..adapters.azure.limits import Budget, classify, write_floor_seconds

BEGIN = "<!-- budget-azure-sdk table: rendered from bench/results/budget-azure-sdk.json -->"
END = "<!-- end budget-azure-sdk table -->"
MAX_THROTTLED_SHARE = 0.01
REPLAY_TOLERANCE_S = 0.01
"""Logged times are rounded to the millisecond: a replayed wait shorter than this is the rounding."""


def is_arm(path: str) -> bool:
    low = path.lower()
    return low.startswith("/subscriptions/") and not low.endswith("metrics:getbatch")


def log_checks(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The request-log checks (all but the duration) over ``records`` in the order they were answered."""
    arm = [r for r in records if is_arm(str(r["path"]))]
    last: dict[tuple[str, str], int] = {}
    for r in arm:
        last[(str(r["method"]), str(r["path"]))] = int(r["status"])
    budget = Budget()
    overdrawn = 0
    served_writes = 0
    for r in arm:
        if r["throttled"]:
            continue
        if r["method"] != "GET":
            served_writes += 1
        decision = budget.take(classify(str(r["method"]), str(r["path"])), str(r["principal"]), float(r["t"]))
        if (not decision.ok and decision.retry_after > REPLAY_TOLERANCE_S) or decision.overdrawn:
            overdrawn += 1
            if not decision.ok:  # count it served, as the stand-in did
                budget.take(classify(str(r["method"]), str(r["path"])), str(r["principal"]),
                            float(r["t"]) + decision.retry_after)
    throttled = sum(1 for r in arm if r["throttled"])
    return {"arm_requests": len(arm), "throttled_429": throttled,
            "throttled_share": round(throttled / len(arm), 5) if arm else 0.0,
            "failed_by_throttling": sum(1 for s in last.values() if s == 429),
            "overdrawn_requests": overdrawn, "served_arm_writes": served_writes}


def first_difference(sim: dict[str, Any], azure: dict[str, Any]) -> dict[str, Any] | None:
    """Where two outcome JSONs part (None when byte-identical): the first differing decision by its index, else
    the first differing field by its name (else their fields' order)."""
    if json.dumps(sim) == json.dumps(azure):
        return None
    ds, da = list(sim.get("decisions", [])), list(azure.get("decisions", []))
    for i in range(max(len(ds), len(da))):
        x, y = (ds[i] if i < len(ds) else None), (da[i] if i < len(da) else None)
        if x != y:
            return {"decision": i, "sim": x, "azure_sdk": y}
    for key in [*sim, *(k for k in azure if k not in sim)]:
        if sim.get(key) != azure.get(key):
            return {"field": key, "sim": sim.get(key), "azure_sdk": azure.get(key)}
    return {"field": None, "sim": list(sim), "azure_sdk": list(azure)}


def sim_outcome(vms: int) -> tuple[dict[str, Any], float]:
    """``--backend sim`` on the same fleet: its outcome JSON and wall seconds."""
    from ..adapters.simulator.scenario import parse_scenario
    from ..simulation import simulate
    from .scale import scale_scenario

    started = time.perf_counter()
    outcome: dict[str, Any] = simulate(parse_scenario(scale_scenario(vms))).outcome
    return outcome, time.perf_counter() - started


def run_one(vms: int) -> dict[str, Any]:
    """One size on ``--backend azure-sdk`` in this process, its request log judged, and on ``--backend sim``."""
    from ..adapters.simulator.scenario import parse_scenario
    from ..adapters.simulator.standin.backend import simulate_azure_sdk
    from .scale import scale_scenario

    sim, sim_wall = sim_outcome(vms)
    scenario = parse_scenario(scale_scenario(vms))
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "azure.jsonl"
        started = time.perf_counter()
        run = simulate_azure_sdk(scenario, azure_log=log)
        wall = time.perf_counter() - started
        with log.open(encoding="utf-8") as f:
            checks = log_checks(json.loads(line) for line in f)
    floor = write_floor_seconds(checks["served_arm_writes"]) / 60.0
    failed_ops = sum(1 for d in run.outcome["decisions"] if "TooManyRequests" in d["reason"]
                     or "Throttled" in d["reason"])
    differs = first_difference(sim, run.outcome)
    return {"vms": vms, "backend": "azure-sdk", "wall_seconds": round(wall, 1), "outcome": run.outcome["outcome"],
            "vms_counts": run.outcome["vms"], **checks, "decisions_naming_throttling": failed_ops,
            "rollout_minutes": round(run.world.clock.now, 1), "budget_floor_minutes": round(floor, 1),
            "equals_sim": differs is None, "first_difference": differs, "sim_wall_seconds": round(sim_wall, 1),
            "met": {"no_operation_failed_by_throttling": checks["failed_by_throttling"] == 0 and failed_ops == 0,
                    "no_bucket_overdrawn": checks["overdrawn_requests"] == 0,
                    "throttled_share_at_most_1pct": checks["throttled_share"] <= MAX_THROTTLED_SHARE}}


def run_sizes(sizes: list[int]) -> dict[str, Any]:
    """Each size in its own process (its memory its own)."""
    rows = []
    for n in sizes:
        proc = subprocess.run([sys.executable, "-m", "shared.bench.budget", str(n)], capture_output=True, text=True,
                              check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {"runs": rows, "note": "checks computed from each run's request log (shared/bench/budget.py)"}


def table(report: dict[str, Any]) -> str:
    """The Markdown table bench/README.md shows for a ``bench-budget`` report (a test holds them equal)."""
    lines = ["| VMs | outcome | ARM requests | answered 429 | 429 share | failed by throttling | overdrawn | "
             "ARM writes | budget floor (min) | rollout (simulated min) | wall (s) | equals `--backend sim` |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in report["runs"]:
        lines.append(f"| {r['vms']:,} | {r['outcome']} | {r['arm_requests']:,} | {r['throttled_429']:,} | "
                     f"{r['throttled_share']:.2%} | {r['failed_by_throttling']} | {r['overdrawn_requests']} | "
                     f"{r['served_arm_writes']:,} | {r['budget_floor_minutes']:.1f} | {r['rollout_minutes']:.1f} | "
                     f"{r['wall_seconds']:,.0f} | {equals_cell(r)} |")
    return "\n".join(lines)


def equals_cell(run: dict[str, Any]) -> str:
    """``yes`` when the outcome JSON is ``--backend sim``'s byte for byte, else where they part."""
    if run["equals_sim"]:
        return "yes"
    d = run["first_difference"]
    if d.get("decision") is not None:
        return f"no: decision {d['decision']}"
    return f"no: field `{d['field']}`" if d.get("field") is not None else "no: the fields' order"


if __name__ == "__main__":
    print(json.dumps(run_one(int(sys.argv[1]))))
