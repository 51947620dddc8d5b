"""The corpus benchmark (scenarios contract §3): scenarios × strategies × seeds, on a process pool.

Every run is one strategy on one scenario and seed, accounted from the ground truth by the same code. Each run
object is the contract's outcome object plus a ``bench`` key (family, tags, whether the change is bad, how many
VMs it affects, whether the run missed it, the run's wall time); the summary per strategy holds the contract's
keys and a few more.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..adapters.simulator.scenario import Scenario, load_scenario
from ..domain.errors import InvalidInput
from ..strategies import STRATEGIES
from .phases import phase_breakdown
from .provenance import Manifest, load_manifest
from .truth import change_truth

DEFAULT_MAX_VMS = 10_000
DEFAULT_EXCLUDE_TAGS = ("scale",)
"""The scale fleets are measured apart, one seed each, by ``bench-scale``."""
WORKERS = 2
# rough seconds per run on a 200-VM fleet, to start the slow runs first and keep both cores busy to the end
_COST = {"shadow-predictive": 10.0, "canary-mannwhitney": 2.0}
CHAOS_STRATEGY = "shadow-predictive"


@dataclass(frozen=True)
class Task:
    order: int
    path: str
    strategy: str
    seed: int
    vms: int
    in_sample: str | None = None
    """``training`` or ``validation`` when the shipped model saw this scenario and seed (model/manifest.json)."""
    chaos_rate: float | None = None
    """Run under chaos (shadow-predictive only: the peers do not run on Durable Functions)."""


@dataclass
class Corpus:
    scenarios: list[tuple[Path, Scenario]]
    skipped: list[dict[str, Any]] = field(default_factory=list)


def parse_strategies(text: str) -> list[str]:
    """``all`` or comma-separated names; an unknown name is refused naming the known ones."""
    names = list(STRATEGIES) if text.strip() == "all" else [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or not names:
        raise InvalidInput(f"--strategies: unknown strategy {', '.join(map(repr, unknown)) or '(none given)'}; "
                           f"choose from: all, {', '.join(STRATEGIES)}")
    return names


def load_corpus(directory: Path, *, max_vms: int = DEFAULT_MAX_VMS,
                exclude_tags: Sequence[str] = DEFAULT_EXCLUDE_TAGS) -> Corpus:
    """Every ``*.yaml``/``*.yml``/``*.json`` scenario in ``directory``, in name order, less the filtered ones."""
    if not directory.is_dir():
        raise InvalidInput(f"--scenarios: {directory} is not a directory")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in (".yaml", ".yml", ".json"))
    corpus = Corpus([])
    for p in files:
        sc = load_scenario(p)
        vms = fleet_size(sc)
        tags = sorted(set(sc.tags) & set(exclude_tags))
        if vms >= max_vms or tags:
            why = f"{vms} VMs >= --max-vms {max_vms}" if vms >= max_vms else f"tagged {', '.join(tags)}"
            corpus.skipped.append({"scenario": sc.name, "vms": vms, "reason": why})
            continue
        corpus.scenarios.append((p, sc))
    if not corpus.scenarios:
        raise InvalidInput(f"--scenarios: no scenario to run in {directory}")
    return corpus


def fleet_size(scenario: Scenario) -> int:
    return sum(s.capacity for s in scenario.fleet.scale_sets)


def plan(corpus: Corpus, strategies: Sequence[str], seeds: int, good_seeds: int | None = None, *,
         seed_offset: int = 0, manifest: Manifest | None = None,
         good_seed_strategies: Sequence[str] | None = None, chaos_rate: float | None = None) -> list[Task]:
    """Seeds ``seed+K .. seed+K+N-1`` per scenario (K = ``seed_offset``, 0: its own seed first); good changes may
    get more seeds (only for ``good_seed_strategies`` when given). Each task says whether the shipped model was
    trained or validated on its scenario and seed, and whether it runs under chaos."""
    tasks: list[Task] = []
    manifest = manifest or Manifest()
    for path, sc in corpus.scenarios:
        for strategy in strategies:
            more = good_seed_strategies is None or strategy in good_seed_strategies
            n = max(seeds, good_seeds or 0) if sc.is_good_change and more else seeds
            for k in range(n):
                seed = sc.seed + seed_offset + k
                rate = chaos_rate if strategy == CHAOS_STRATEGY else None
                tasks.append(Task(len(tasks), str(path), strategy, seed, fleet_size(sc), manifest.use_of(sc, seed),
                                  rate))
    return tasks


def shipped_manifest() -> Manifest:
    """The shipped model's manifest; none needed when no model is shipped (the judge learns nothing)."""
    from ..adapters.onnx_model import MODEL_DIR, model_available

    return load_manifest(MODEL_DIR) if model_available(MODEL_DIR) else Manifest()


_SCENARIOS: dict[str, Scenario] = {}


def run_task(task: Task) -> dict[str, Any]:
    """One run, in a worker process: the outcome object with the benchmark's own ``bench`` key."""
    sc = _SCENARIOS.get(task.path)
    if sc is None:
        sc = _SCENARIOS[task.path] = load_scenario(task.path)
    started = time.perf_counter()
    outcome = STRATEGIES[task.strategy](sc, task.seed)
    wall = time.perf_counter() - started
    if task.chaos_rate is not None:  # the same run disturbed; compared with the undisturbed one above
        from ..strategies import shadow_predictive_chaos

        calm = outcome
        outcome = shadow_predictive_chaos(sc, task.seed, task.chaos_rate)
        outcome["chaos"]["differs"] = outcome["vms"] != calm["vms"]
    truth = change_truth(sc, task.seed)
    missed = truth.bad and outcome["production_vms_impaired"] > truth.vms_affected / 2
    outcome["bench"] = {"family": sc.family or "", "tags": list(sc.tags), "bad_change": truth.bad,
                        "vms_affected": truth.vms_affected, "missed": missed, "wall_seconds": round(wall, 3),
                        "in_sample": task.in_sample is not None, "in_sample_use": task.in_sample,
                        "onset": onset_class(sc), "fleet_wide": fleet_wide_kinds(sc, truth.vms_affected)}
    return outcome


def onset_class(sc: Scenario) -> str:
    """``none`` (a good change), ``during_bake`` when every effect shows while the shadows are watched (with the
    default bake and a 5-minute margin), else ``after_bake``."""
    from ..domain.policy import DEFAULT_POLICY
    from ..learning.dataset import observable

    if sc.is_good_change:
        return "none"
    return "during_bake" if observable(sc, sc.rollout_policy().bake_minutes or DEFAULT_POLICY.bake_minutes) \
        else "after_bake"


FLEET_WIDE_SHARE = 0.05
FLEET_WIDE_MIN_VMS = 10


def fleet_wide_kinds(sc: Scenario, affected: int) -> list[str]:
    """The issue's must-catch changes: fleet-wide (no ``when``) crashes on apply or health flaps, immediate,
    affecting at least 5% of the VMs and at least 10 (a simulator flap fails at least 20% of probes)."""
    vms = fleet_size(sc)
    if affected < max(FLEET_WIDE_MIN_VMS, FLEET_WIDE_SHARE * vms):
        return []
    return sorted({e.mode.value for e in sc.change.truth.effects
                   if e.mode.value in ("crash_on_apply", "health_flap") and e.onset_minutes == 0
                   and not e.when.model_dump(exclude_none=True, exclude_defaults=True)})


def run_tasks(tasks: Sequence[Task], *, workers: int = WORKERS,
              progress: Callable[[Task, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run on a pool of ``workers`` processes (in this process when 1); results in task order."""
    results: dict[int, dict[str, Any]] = {}
    ordered = sorted(tasks, key=lambda t: -_COST.get(t.strategy, 0.5) * t.vms)
    if workers <= 1:
        for t in ordered:
            results[t.order] = run_task(t)
            if progress:
                progress(t, results[t.order])
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            pending: dict[Future[dict[str, Any]], Task] = {pool.submit(run_task, t): t for t in ordered}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    t = pending.pop(f)
                    results[t.order] = f.result()
                    if progress:
                        progress(t, results[t.order])
    return [results[t.order] for t in sorted(tasks, key=lambda t: t.order)]


def summarise(runs: Sequence[dict[str, Any]], strategies: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The contract's summary per strategy, and more, over the runs the model never saw (in-sample runs left out)."""
    out: dict[str, dict[str, Any]] = {}
    left_out = sum(1 for r in runs if r["bench"].get("in_sample"))
    runs = [r for r in runs if not r["bench"].get("in_sample")]
    floor = {(r["scenario"], r["seed"]): r["capacity"]["shortfall_vm_minutes"] for r in runs
             if r["strategy"] == "oracle"}
    for s in strategies:
        rs = [r for r in runs if r["strategy"] == s]
        good = [r for r in rs if not r["bench"]["bad_change"]]
        bad = [r for r in rs if r["bench"]["bad_change"]]
        fleet_cost = sum(r["fleet_cost_usd"] for r in rs)
        shadow_cost = sum(r["shadow"]["cost_usd"] for r in rs)
        by_family: dict[str, float] = defaultdict(float)
        for r in rs:
            by_family[r["bench"]["family"] or "(none)"] += r["impaired_vm_minutes"]
        durations = [r["duration_minutes"] for r in good]
        out[s] = {
            "runs": len(rs),
            "impaired_vm_minutes": round(sum(r["impaired_vm_minutes"] for r in rs), 1),
            "production_vms_impaired": sum(r["production_vms_impaired"] for r in rs),
            "false_halts": sum(1 for r in good if r["outcome"] != "completed"),
            "vms_excluded_on_good": sum(r["vms"]["never_touched"] for r in good),
            "missed_bad_changes": sum(1 for r in bad if r["bench"]["missed"]),
            "median_duration_minutes_good": round(statistics.median(durations), 1) if durations else None,
            "shadow_cost_ratio": round(shadow_cost / fleet_cost, 5) if fleet_cost else 0.0,
            "capacity_shortfall_vm_minutes": round(sum(r["capacity"]["shortfall_vm_minutes"] for r in rs), 1),
            "extra_vm_minutes": round(sum(r["capacity"]["extra_vm_minutes"] for r in rs), 1),
            "wall_seconds": round(sum(r["bench"]["wall_seconds"] for r in rs), 1),
            # beyond the contract
            "good_runs": len(good),
            "bad_runs": len(bad),
            "false_halt_rate": round(sum(1 for r in good if r["outcome"] != "completed") / len(good), 4)
            if good else None,
            "outcomes": dict(sorted(Counter(r["outcome"] for r in rs).items())),
            "failed_unrecovered": sum(r["vms"]["failed_unrecovered"] for r in rs),
            "rolled_back": sum(r["vms"]["rolled_back"] for r in rs),
            "snapshots_taken": sum(r["snapshots_taken"] for r in rs),
            "shadow_cost_usd": round(shadow_cost, 2),
            "fleet_cost_usd": round(fleet_cost, 2),
            "max_extra_instances": max((r["capacity"]["max_extra_instances"] for r in rs), default=0),
            "impaired_vm_minutes_bad": round(sum(r["impaired_vm_minutes"] for r in bad), 1),
            "impaired_vm_minutes_by_family": {k: round(v, 1) for k, v in sorted(by_family.items())},
            "capacity_shortfall_over_oracle_vm_minutes": round(sum(
                max(0.0, r["capacity"]["shortfall_vm_minutes"] - floor[(r["scenario"], r["seed"])]) for r in rs
                if (r["scenario"], r["seed"]) in floor), 1) if floor else None,
            "median_wall_seconds": round(statistics.median(r["bench"]["wall_seconds"] for r in rs), 3) if rs else None,
            "in_sample_runs_left_out": left_out,
            "impaired_vm_minutes_during_bake": round(sum(r["impaired_vm_minutes"] for r in bad
                                                         if r["bench"].get("onset") == "during_bake"), 1),
            "impaired_vm_minutes_after_bake": round(sum(r["impaired_vm_minutes"] for r in bad
                                                        if r["bench"].get("onset") == "after_bake"), 1),
            "good_runs_with_exclusions": sum(1 for r in good if r["vms"]["never_touched"]),
            "fleet_wide_runs": sum(1 for r in bad if r["bench"].get("fleet_wide")),
            "fleet_wide_missed": sum(1 for r in bad if r["bench"].get("fleet_wide") and r["bench"]["missed"]),
        }
        disturbed = [r for r in rs if "chaos" in r]
        if disturbed:
            out[s]["chaos"] = chaos_summary(disturbed)
        phases = phase_breakdown(good)
        if phases:  # strategies whose decisions mark the phases (shadow-predictive)
            out[s]["phases_good"] = phases
    return out


def chaos_summary(runs: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How the runs under chaos fared: unknown state or unrecovered VMs, leaks, and ``vms`` counts unlike the
    same run undisturbed."""
    return {"runs": len(runs), "redelivered": sum(r["chaos"]["redelivered"] for r in runs),
            "crashes": sum(r["chaos"]["crashes"] for r in runs),
            "unknown_state_runs": sum(1 for r in runs if r["vms"]["unknown_state"] + r["vms"]["failed_unrecovered"]),
            "leak_runs": sum(1 for r in runs if any(r["leaks"].values())),
            "differing_runs": sum(1 for r in runs if r["chaos"]["differs"]),
            # beyond the contract: runs whose leftovers only the janitor cleaned up
            "janitor_runs": sum(1 for r in runs if any(r.get("janitor", {}).values()))}


def bench(directory: Path, strategies: Sequence[str], seeds: int, *, good_seeds: int | None = None,
          seed_offset: int = 0, good_seed_strategies: Sequence[str] | None = None,
          max_vms: int = DEFAULT_MAX_VMS, exclude_tags: Sequence[str] = DEFAULT_EXCLUDE_TAGS, workers: int = WORKERS,
          progress: Callable[[Task, dict[str, Any]], None] | None = None,
          on_plan: Callable[[list[Task], Corpus], None] | None = None,
          chaos_rate: float | None = None) -> dict[str, Any]:
    """Run the benchmark and return the contract's object: ``{"runs": [...], "summary": {...}, "meta": {...}}``."""
    if seeds < 1:
        raise InvalidInput(f"--seeds must be at least 1 (got {seeds})")
    corpus = load_corpus(directory, max_vms=max_vms, exclude_tags=exclude_tags)
    tasks = plan(corpus, strategies, seeds, good_seeds, seed_offset=seed_offset, manifest=shipped_manifest(),
                 good_seed_strategies=good_seed_strategies, chaos_rate=chaos_rate)
    if on_plan:
        on_plan(tasks, corpus)
    started = time.perf_counter()
    runs = run_tasks(tasks, workers=workers, progress=progress)
    wall = time.perf_counter() - started
    return {
        "runs": runs,
        "summary": summarise(runs, strategies),
        "meta": {"scenarios": [sc.name for _, sc in corpus.scenarios], "skipped": corpus.skipped,
                 "strategies": list(strategies), "seeds": seeds, "good_seeds": good_seeds or seeds,
                 "seed_offset": seed_offset, "in_sample_runs": sum(1 for t in tasks if t.in_sample),
                 "good_seed_strategies": list(good_seed_strategies) if good_seed_strategies else "all",
                 "runs": len(runs), "workers": workers, "chaos_rate": chaos_rate,
                 "wall_seconds": round(wall, 1),
                 "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                 "command": ""},
    }
