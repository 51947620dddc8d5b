"""Scale benchmark: one rollout per fleet size, each in its own process so peak memory is its own.

Reports the simulated duration beside the budget-derived floor (the least time the rollout's ARM writes take
under ARM's and Compute's budgets, ``limits.write_floor_seconds``) and the minutes operations waited for
their budget; wall time, peak resident memory, the local Durable runner's work (turns, events replayed, the
longest history in events and bytes, and the time spent replaying), the inference throughput of the
FailureModel port on the whole fleet as one batch, and how each grows with the fleet (the slope of log(cost)
over log(VMs): 1.0 is linear).
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import time
from typing import Any

from ..adapters.azure.limits import write_floor_seconds

SKUS = {"Standard_D2s_v5": 1, "Standard_D4s_v5": 3, "Standard_D8s_v5": 2, "Standard_E4s_v5": 1}
IMAGES = {"ubuntu-22.04-2024.10": 4, "ubuntu-20.04-2024.05": 1}


def scale_scenario(vms: int, seed: int = 1) -> dict[str, Any]:
    """A heterogeneous fleet of ``vms`` VMs in sets of at most 1,000, and a change that breaks a rare stratum."""
    sets = max(1, math.ceil(vms / 1000))
    per = [vms // sets + (1 if i < vms % sets else 0) for i in range(sets)]
    return {
        "name": f"scale-{vms}", "family": "scale", "seed": seed,
        "fleet": {"scale_sets": [
            {"name": f"ss{i:03d}", "orchestration": "Uniform" if i % 4 == 3 else "Flexible", "capacity": n,
             "skus": SKUS, "images": IMAGES, "load": {"mean": 0.45, "diurnal_amplitude": 0.12, "noise": 0.05}}
            for i, n in enumerate(per)]},
        "change": {"id": f"scale-{vms}", "truth": {"effects": [
            {"mode": "memory_leak", "severity": 0.5,
             "when": {"skus": ["Standard_E4s_v5"], "images": ["ubuntu-20.04-2024.05"]}},
            {"mode": "latent_crash", "probability": 0.01, "onset_minutes": 240}]}},
    }


def run_one(vms: int) -> dict[str, Any]:
    """Run one size in this process and report what it cost."""
    from ..adapters.simulator.scenario import parse_scenario
    from ..simulation import simulate

    scenario = parse_scenario(scale_scenario(vms))
    started = time.perf_counter()
    run = simulate(scenario)
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stats = run.stats
    inference = inference_seconds(run)
    return {"vms": vms, "wall_seconds": round(wall, 2), "peak_rss_mib": round(peak_kib / 1024, 1),
            "outcome": run.outcome["outcome"], "orchestration_turns": stats.turns,
            "history_events_replayed": stats.replayed_events, "max_history_events": stats.max_history,
            "max_history_bytes": stats.max_history_bytes, "replay_seconds": round(stats.replay_seconds, 2),
            "activities": stats.activities, "orchestration_instances": stats.instances,
            "inference_model": run.services.model.name, "inference_seconds": round(inference, 4),
            "inference_vms_per_second": round(vms / inference) if inference > 0 else None,
            "simulated_minutes": round(run.world.clock.now, 1),
            "throttled_minutes": round(run.world.throttled_minutes, 1), "arm_writes": run.world.arm_writes,
            "budget_floor_minutes": round(write_floor_seconds(run.world.arm_writes) / 60.0, 1)}


def inference_seconds(run: Any, min_seconds: float = 0.5) -> float:
    """Seconds for one ``FailureModel.predict`` over every production VM as one batch (best of repeats).

    The features are the run's own: every stratum's evidence as the bake left it in the store.
    """
    from ..domain.features import StratumEvidence, build_features
    from ..domain.model import VmInfo

    store = run.services.store
    vms = [VmInfo.from_dict(v["info"]) for v in store.get_items(run.rollout_id, "vm").values()]
    evidence = {k: StratumEvidence.from_dict(v) for k, v in store.get_items(run.rollout_id, "evidence").items()}
    pooled = store.get_items(run.rollout_id, "fleet_evidence").get("fleet")
    table = build_features(vms, evidence, StratumEvidence.from_dict(pooled) if pooled else None)
    best = math.inf
    spent = 0.0
    while spent < min_seconds or best == math.inf:
        started = time.perf_counter()
        run.services.model.predict(table)
        took = time.perf_counter() - started
        best, spent = min(best, took), spent + took
    return best


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(y) over log(x)."""
    pts = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return round(sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx, 3) if sxx else None


def run_sizes(sizes: list[int]) -> dict[str, Any]:
    rows = []
    for n in sizes:
        proc = subprocess.run([sys.executable, "-m", "shared.bench.scale", str(n)], capture_output=True, text=True,
                              check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {
        "runs": rows,
        "growth": {key: slope([(r["vms"], r[key]) for r in rows])
                   for key in ("wall_seconds", "peak_rss_mib", "history_events_replayed", "max_history_events",
                               "max_history_bytes", "replay_seconds", "inference_seconds")},
        "note": "growth is the slope of log(cost) over log(VMs): 1.0 is linear, 0 is constant",
    }


if __name__ == "__main__":
    print(json.dumps(run_one(int(sys.argv[1]))))
