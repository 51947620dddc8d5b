"""The benchmark report: the issue's targets with the measured numbers, PNG plots (matplotlib, Agg) and one HTML page.

matplotlib is imported lazily, only to draw, so the rest of the CLI runs without it.
"""

from __future__ import annotations

import html
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..domain.errors import ConfigurationError, ShadowRolloutError

PROJECT = "shadow-predictive"
NO_WATCH = "shadow-predictive-no-watch"
BASELINE_DURATION = "linear-alarm"
BASELINE_CAPACITY = "vmss-rolling"
FLOOR = "oracle"
MIN_GOOD_RUNS = 200
COLOURS = {"shadow-predictive": "#1b9e77", "vmss-rolling": "#0072b2", "canary-mannwhitney": "#e69f00",
           "linear-alarm": "#cc79a7", "threshold-only": "#56b4e9", "no-guard": "#d55e00", "oracle": "#999999"}


def colour(strategy: str) -> str:
    """Each strategy's colour; ``<peer>+watch`` and the project without its watch share their base's hue."""
    if strategy == NO_WATCH:
        return "#66c2a5"
    return COLOURS.get(strategy.removesuffix("+watch"), "#777777")


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise ConfigurationError("--report needs matplotlib: pip install matplotlib") from exc


# ---------------------------------------------------------------------------------------------- targets
def evaluate_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets for ``shadow-predictive``: each with the measured numbers, met or not, and why."""
    summary = result["summary"]
    runs = result["runs"]
    sp = summary.get(PROJECT)
    if sp is None:
        return []
    out: list[dict[str, Any]] = []
    peers = {k: v for k, v in summary.items() if k not in (PROJECT, NO_WATCH, FLOOR)}
    if peers:
        key = "impaired_vm_minutes_during_bake"
        best = min(peers, key=lambda k: peers[k].get(key, 0.0))
        limit = 0.1 * peers[best].get(key, 0.0)
        out.append(_target(
            "impaired VM-minutes on effects that begin during the bake <= 1/10 of the best non-oracle peer's "
            "(+watch peers included)",
            f"{sp.get(key, 0.0):,.0f} vs {best} {peers[best].get(key, 0.0):,.0f} (limit {limit:,.0f}; ratio "
            f"{_ratio(sp.get(key, 0.0), peers[best].get(key, 0.0))})",
            sp.get(key, 0.0) <= limit, _why_impaired(runs, best, "during_bake")))
        watched = {k: v for k, v in peers.items() if k.endswith("+watch")}
        if watched:
            key = "impaired_vm_minutes_after_bake"
            best = min(watched, key=lambda k: watched[k].get(key, 0.0))
            out.append(_target(
                "impaired VM-minutes on effects that begin after the bake <= the best +watch peer's",
                f"{sp.get(key, 0.0):,.0f} vs {best} {watched[best].get(key, 0.0):,.0f}",
                sp.get(key, 0.0) <= watched[best].get(key, 0.0), _why_impaired(runs, best, "after_bake")))
        best = min(peers, key=lambda k: peers[k]["missed_bad_changes"])
        out.append(_target(
            "missed bad changes <= the best peer's",
            f"{sp['missed_bad_changes']}/{sp['bad_runs']} vs {best} {peers[best]['missed_bad_changes']}/"
            f"{peers[best]['bad_runs']}",
            sp["missed_bad_changes"] <= peers[best]["missed_bad_changes"], _why_missed(runs)))
    wide = [r for r in _by(runs, PROJECT) if r["bench"].get("fleet_wide") and not r["bench"].get("in_sample")]
    missed_wide = [r for r in wide if r["bench"]["missed"]]
    out.append(_target(
        "no fleet-wide crash on apply (>= 5% and >= 10 VMs) or health flap (>= 10 VMs) missed",
        f"{len(missed_wide)} missed of {len(wide)} such runs", (not missed_wide) if wide else None,
        [f"{r['scenario']} seed {r['seed']}: {r['production_vms_impaired']} of {r['bench']['vms_affected']} "
         f"affected VMs impaired - {_first_reason(r, ('halt_in_production', 'halt_before_production'))}"
         for r in missed_wide[:8]] + ([] if wide else ["no such run in this benchmark"])))
    rate = sp["false_halts"] / sp["good_runs"] if sp["good_runs"] else math.nan
    enough = sp["good_runs"] >= MIN_GOOD_RUNS
    out.append(_target(
        f"false halts <= 1% over at least {MIN_GOOD_RUNS} good runs",
        f"{sp['false_halts']}/{sp['good_runs']} good runs = {rate:.1%}",
        (rate <= 0.01) if enough else None,
        _why_false_halts(runs) + ([] if enough else [f"only {sp['good_runs']} good runs (< {MIN_GOOD_RUNS}): "
                                                     "run with more --good-seeds"])))
    with_exclusions = sp.get("good_runs_with_exclusions", 0)
    rate = with_exclusions / sp["good_runs"] if sp["good_runs"] else math.nan
    out.append(_target(f"good runs with any exclusion <= 1% over at least {MIN_GOOD_RUNS} good runs",
                       f"{with_exclusions}/{sp['good_runs']} good runs = {rate:.1%} ({sp['vms_excluded_on_good']} "
                       "VMs left untouched)",
                       (rate <= 0.01) if enough else None,
                       _why_excluded(runs) + ([] if enough else [f"only {sp['good_runs']} good runs (< "
                                                                 f"{MIN_GOOD_RUNS})"])))
    base = summary.get(BASELINE_DURATION)
    if base and base["median_duration_minutes_good"] and sp["median_duration_minutes_good"] is not None:
        limit = 1.5 * base["median_duration_minutes_good"]
        out.append(_target(
            f"median duration on good changes <= 1.5x {BASELINE_DURATION}'s",
            f"{sp['median_duration_minutes_good']:g} min vs {base['median_duration_minutes_good']:g} min "
            f"(limit {limit:g}; ratio "
            f"{_ratio(sp['median_duration_minutes_good'], base['median_duration_minutes_good'])})",
            sp["median_duration_minutes_good"] <= limit, _why_duration(runs)))
    if summary.get(BASELINE_CAPACITY):
        # paired: the same scenarios and seeds on both sides (good changes may run more seeds for the project)
        paired = _paired(runs, PROJECT, BASELINE_CAPACITY)
        mine, theirs = (sum(r["capacity"]["shortfall_vm_minutes"] for r in rs) for rs in paired)
        bought, theirs_bought = (sum(r["capacity"]["extra_vm_minutes"] for r in rs) for rs in paired)
        limit = 0.1 * theirs
        out.append(_target(
            f"capacity shortfall <= 1/10 of {BASELINE_CAPACITY}'s (extra VM-minutes reported)",
            f"{mine:,.0f} vs {theirs:,.0f} VM-min over the {len(paired[0])} runs both made (limit {limit:,.0f}; "
            f"ratio {_ratio(mine, theirs)}); extra VM-minutes bought {bought:,.0f} (vs {theirs_bought:,.0f})",
            mine <= limit, _why_shortfall(runs)))
    out.append(_target("shadow_cost_ratio < 2%", f"{sp['shadow_cost_ratio']:.2%} ({sp['shadow_cost_usd']:,.2f} of "
                                                 f"{sp['fleet_cost_usd']:,.2f} USD)",
                       sp["shadow_cost_ratio"] < 0.02, []))
    return out


def _target(target: str, measured: str, met: bool | None, why: list[str]) -> dict[str, Any]:
    return {"target": target, "measured": measured, "met": met, "why": [] if met else why}


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def _by(runs: Sequence[dict[str, Any]], strategy: str) -> list[dict[str, Any]]:
    return [r for r in runs if r["strategy"] == strategy]


def _per_scenario(runs: Sequence[dict[str, Any]], strategy: str, key: Any) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for r in _by(runs, strategy):
        out[r["scenario"]] += key(r)
    return out


def _why_impaired(runs: Sequence[dict[str, Any]], best: str, onset: str | None = None) -> list[str]:
    runs = [r for r in runs if not r["bench"].get("in_sample") and (onset is None or r["bench"].get("onset") == onset)]
    mine = _per_scenario(runs, PROJECT, lambda r: r["impaired_vm_minutes"])
    theirs = _per_scenario(runs, best, lambda r: r["impaired_vm_minutes"])
    top = sorted(mine, key=lambda k: -mine[k])[:6]
    return [f"{k}: {mine[k]:,.0f} impaired VM-min (vs {best} {theirs.get(k, 0):,.0f})" for k in top if mine[k] > 0]


def _why_missed(runs: Sequence[dict[str, Any]]) -> list[str]:
    rs = [r for r in _by(runs, PROJECT) if r["bench"]["missed"] and not r["bench"].get("in_sample")]
    kinds = ("halt_before_production", "halt_in_production", "skip_stratum")
    return [f"{r['scenario']} seed {r['seed']}: {r['production_vms_impaired']} of {r['bench']['vms_affected']} "
            f"affected VMs impaired ({r['bench'].get('onset')}) - {_first_reason(r, kinds)}" for r in rs[:10]]


def peer_wins(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every scenario family in which a non-oracle peer impairs fewer VM-minutes than shadow-predictive."""
    runs = [r for r in result["runs"] if not r["bench"].get("in_sample") and r["bench"]["bad_change"]]
    by: dict[tuple[str, str], float] = defaultdict(float)
    for r in runs:
        by[(r["strategy"], r["bench"]["family"])] += r["impaired_vm_minutes"]
    families = sorted({f for _, f in by})
    out = []
    for f in families:
        mine = by.get((PROJECT, f), 0.0)
        better = sorted(((by[(s, f)], s) for s, g in by if g == f and s not in (PROJECT, NO_WATCH, FLOOR)
                         and by[(s, f)] < mine))
        if better:
            ours = [r for r in runs if r["strategy"] == PROJECT and r["bench"]["family"] == f]
            kinds = ("halt_before_production", "halt_in_production", "skip_stratum", "proceed")
            out.append({"family": f, "ours": round(mine, 1), "peer": better[0][1], "theirs": round(better[0][0], 1),
                        "onset": ours[0]["bench"].get("onset") if ours else None,
                        "our_decisions": [_first_reason(r, kinds) for r in ours[:2]]})
    return out


def contribution(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Impaired VM-minutes with and without the 24-hour watch, on both sides: what the shadows add on their own."""
    s = result["summary"]
    rows = []
    for key, label in (("impaired_vm_minutes_during_bake", "during the bake"),
                       ("impaired_vm_minutes_after_bake", "after the bake"), ("impaired_vm_minutes", "all")):
        plain = {k: v[key] for k, v in s.items() if k not in (PROJECT, NO_WATCH, FLOOR) and "+watch" not in k}
        watched = {k: v[key] for k, v in s.items() if k.endswith("+watch")}
        rows.append({"onset": label, PROJECT: s.get(PROJECT, {}).get(key), NO_WATCH: s.get(NO_WATCH, {}).get(key),
                     "best_peer": min(plain.items(), key=lambda kv: kv[1]) if plain else None,
                     "best_peer_watch": min(watched.items(), key=lambda kv: kv[1]) if watched else None})
    return rows


def _first_reason(r: dict[str, Any], kinds: Sequence[str]) -> str:
    """The first decision of these kinds, else how the run finished (a failed orchestration says its error)."""
    for want in (kinds, ("orchestration_failed", "finished")):
        for d in r["decisions"]:
            if d["kind"] in want:
                return f"{d['kind']} at minute {d['minute']:g}: {str(d['reason'])[:260]}"
    return str(r["outcome"])


def _why_false_halts(runs: Sequence[dict[str, Any]]) -> list[str]:
    bad = [r for r in _by(runs, PROJECT) if not r["bench"]["bad_change"] and r["outcome"] != "completed"]
    kinds = ("halt_before_production", "halt_in_production", "skip_stratum", "skip_vms", "exclude_vm",
             "rollback_vm", "orchestration_failed")
    return [f"{r['scenario']} seed {r['seed']}: {r['outcome']} - {_first_reason(r, kinds)}" for r in bad[:12]]


def _why_excluded(runs: Sequence[dict[str, Any]]) -> list[str]:
    rs = [r for r in _by(runs, PROJECT) if not r["bench"]["bad_change"] and r["vms"]["never_touched"]]
    kinds = ("halt_before_production", "halt_in_production", "skip_stratum", "skip_vms", "exclude_vm")
    return [f"{r['scenario']} seed {r['seed']}: {r['vms']['never_touched']} VMs - {_first_reason(r, kinds)}"
            for r in rs[:12]]


def _why_duration(runs: Sequence[dict[str, Any]]) -> list[str]:
    good = [r for r in _by(runs, PROJECT) if not r["bench"]["bad_change"]]
    firsts = [f for f in (_first_minute(r, ("prepare", "plan_waves", "error_threshold")) for r in good)
              if f is not None]
    if not firsts:
        return []
    durations = [r["duration_minutes"] for r in good]
    start, total = statistics.median(firsts), statistics.median(durations)
    return [f"production starts at minute {start:.1f} (median over good runs): shadow pool, baseline, change on the "
            f"shadows and bake come first", f"the waves and the watch after each take the other {total - start:.1f} "
            f"minutes (median duration {total:.1f})",
            f"{BASELINE_DURATION}'s 30-minute bake changes nothing in production, so its duration ends with its last "
            "step"]


def _first_minute(r: dict[str, Any], kinds: Sequence[str]) -> float | None:
    return next((float(d["minute"]) for d in r["decisions"] if d["kind"] in kinds), None)


def _paired(runs: Sequence[dict[str, Any]], a: str, b: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The runs of ``a`` and of ``b`` on the (scenario, seed) pairs both made, so sums compare like with like."""
    both = {(r["scenario"], r["seed"]) for r in _by(runs, a)} & {(r["scenario"], r["seed"]) for r in _by(runs, b)}
    return ([r for r in _by(runs, a) if (r["scenario"], r["seed"]) in both],
            [r for r in _by(runs, b) if (r["scenario"], r["seed"]) in both])


def _why_shortfall(runs: Sequence[dict[str, Any]]) -> list[str]:
    ours, peer = _paired(runs, PROJECT, BASELINE_CAPACITY)
    paired = [*ours, *peer]
    mine = _per_scenario(paired, PROJECT, lambda r: r["capacity"]["shortfall_vm_minutes"])
    theirs = _per_scenario(paired, BASELINE_CAPACITY, lambda r: r["capacity"]["shortfall_vm_minutes"])
    top = sorted(mine, key=lambda k: -mine[k])[:6]
    return [f"{k}: {mine[k]:,.0f} shortfall VM-min (vs {BASELINE_CAPACITY} {theirs.get(k, 0):,.0f})"
            for k in top if mine[k] > 0]


# ---------------------------------------------------------------------------------------------- timeline
def timeline_of(directory: Path, name: str | None) -> dict[str, Any]:
    """Run ``shadow-predictive`` once more on one scenario and keep what a timeline needs (truth included).

    ``name`` is a scenario file, or the name of a scenario in ``directory``; by default the bundled demo, which
    shows every part: a stratum skipped on the shadows' evidence, waves, late failures restored, capacity borrowed.
    """
    from ..adapters.simulator.scenario import load_scenario
    from ..scenarios import default_scenario_path
    from ..simulation import simulate

    if name is None:
        path: Path | None = default_scenario_path()
    elif Path(name).is_file():
        path = Path(name)
    else:
        path = next((p for p in sorted(directory.iterdir()) if p.suffix.lower() in (".yaml", ".yml", ".json")
                     and load_scenario(p).name == name), None)
    if path is None:
        raise ConfigurationError(f"--timeline: no scenario file or scenario named {name!r} in {directory}")
    sc = load_scenario(path)
    run = simulate(sc)
    inst = run.runner.instances[run.rollout_id]
    if inst.status != "Completed":  # a crash must not be drawn as a clean halt
        raise ShadowRolloutError(f"the timeline's run of {sc.name} (seed {run.world.seed}) did not complete: "
                                 f"{inst.status}: {inst.error or inst.output}")
    w = run.world
    n = w.n_production
    T = w.t

    def col(key: str) -> list[float | None]:
        return [None if not math.isfinite(x) else round(float(x), 1) for x in T[key][:n]]

    items = run.services.store.get_items(run.rollout_id, "vm")
    strata: dict[str, dict[str, Any]] = {}
    for v in items.values():
        s = strata.setdefault(v["stratum"], {"vms": 0, "risk": v.get("risk"), "skipped": 0})
        s["vms"] += 1
        s["skipped"] += bool(v.get("skipped"))
    decided = next((d["minute"] for d in run.outcome["decisions"]
                    if d["kind"] in ("proceed", "halt_before_production")), None)
    record = run.services.store.get_rollout(run.rollout_id) or {}
    status = inst.custom_status if isinstance(inst.custom_status, dict) else {}

    def minute(iso: Any) -> float | None:  # minutes since the trigger, as the decisions count them
        if not iso or not record.get("started_at"):
            return None
        return round((datetime.fromisoformat(str(iso)) - datetime.fromisoformat(record["started_at"]))
                     / timedelta(minutes=1), 1)
    return {
        "scenario": sc.name, "seed": w.seed, "strategy": PROJECT, "outcome": run.outcome["outcome"],
        "runtime_status": inst.status,
        "apply_at": col("apply_at"), "restore_start": col("restore_start"), "restore_done": col("restore_done"),
        "impaired_at": col("imp_at"),
        "shadows": [{"created": round(w.shadow_created_at[row], 1),
                     "gone": round(min(float(T["exists_to"][row]), w.clock.now), 1),
                     "applied": None if math.isnan(T["apply_at"][row]) else round(float(T["apply_at"][row]), 1),
                     "spot": w.shadow_spot.get(row, True)} for row in w.shadow_rows],
        "predictions": {"minute": decided, "strata": [
            {"stratum": k, **v} for k, v in sorted(strata.items())]},
        "extra": [[round(up, 1), None if math.isinf(down) else round(down, 1)]
                  for st in w.scale_sets.values() for up, down in st.extra],
        "decisions": [d for d in run.outcome["decisions"] if d["kind"] in (
            "halt_before_production", "halt_in_production", "skip_stratum", "skip_vms", "plan_waves", "proceed",
            "scale_out", "scale_in", "finished")],
        "duration_minutes": run.outcome["duration_minutes"],
        # the production watch after the last wave (from the orchestration's status): [from, until] or None
        "watch": ([minute(status.get("watch_started_at")), minute(status.get("watch_until"))]
                  if status.get("watch_started_at") else None),
    }


# ---------------------------------------------------------------------------------------------- drawing
def write_report(result: dict[str, Any], directory: Path) -> list[Path]:
    """Write the PNGs and ``index.html`` into ``directory``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    directory.mkdir(parents=True, exist_ok=True)
    figures = [
        ("impaired.png", _plot_impaired, "Impaired production VM-minutes per strategy and scenario family "
         "(symmetric log scale; summed over seeds). Lower is better; oracle is the floor."),
        ("false_halts.png", _plot_false_halts, "Good changes: share of runs not <code>completed</code> (false "
         "halts, as the contract counts them: a halt, a rollback or an exclusion) and VMs left untouched."),
        ("duration_good.png", _plot_duration, "Duration on good changes: minutes from the trigger to the last "
         "action on production (box: quartiles; whiskers: 1.5 IQR)."),
        ("shadow_cost.png", _plot_shadow_cost, "Shadow cost as a share of the production fleet's cost over each "
         "run's duration (Spot prices; only shadow-predictive has shadows; dashed: the 2% target)."),
        ("capacity.png", _plot_capacity, "Capacity: shortfall VM-minutes (demand at 70% utilisation not served) "
         "and the extra VM-minutes a strategy bought to avoid it."),
        ("timeline.png", _plot_timeline, "The timeline of one shadow-predictive rollout: shadows, predictions per "
         "stratum, production waves and rollbacks, VMs impaired (ground truth), extra capacity."),
    ]
    written: list[Path] = []
    shown: list[tuple[str, str]] = []
    for name, draw, caption in figures:
        path = directory / name
        if draw(result, path):
            written.append(path)
            shown.append((name, caption))
    index = directory / "index.html"
    index.write_text(_html(result, shown), encoding="utf-8")
    written.append(index)
    return written


def _strategies(result: dict[str, Any]) -> list[str]:
    return list(result["summary"])


def _new_figure(w: float = 9.0, h: float = 4.2) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(w, h), dpi=90)
    return fig, ax


def _save(fig: Any, path: Path) -> bool:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")  # legends placed outside the axes are kept whole
    plt.close(fig)
    return True


def _plot_impaired(result: dict[str, Any], path: Path) -> bool:
    names = _strategies(result)
    families = sorted({f for s in result["summary"].values() for f in s["impaired_vm_minutes_by_family"]})
    if not families:
        return False
    fig, ax = _new_figure(11, 4.6)
    width = 0.8 / len(names)
    x = np.arange(len(families))
    for i, s in enumerate(names):
        vals = [result["summary"][s]["impaired_vm_minutes_by_family"].get(f, 0.0) for f in families]
        ax.bar(x + i * width - 0.4 + width / 2, vals, width, label=s, color=colour(s))
    ax.set_yscale("symlog", linthresh=100)
    ax.set_xticks(x, families, rotation=30, ha="right")
    ax.set_ylabel("impaired VM-minutes")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # beside, not over bars
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _plot_false_halts(result: dict[str, Any], path: Path) -> bool:
    import matplotlib.pyplot as plt

    names = _strategies(result)
    s = result["summary"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.0), dpi=90)
    rates = [100.0 * (s[n]["false_halt_rate"] or 0.0) for n in names]
    bars = a.bar(names, rates, color=[colour(n) for n in names])
    for bar, n in zip(bars, names, strict=True):
        a.annotate(f"{s[n]['false_halts']}/{s[n]['good_runs']}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                   ha="center", va="bottom", fontsize=8)
    a.axhline(1.0, color="black", lw=0.8, ls="--")
    a.set_ylabel("false halts, % of good runs")
    b.bar(names, [s[n]["vms_excluded_on_good"] for n in names], color=[colour(n) for n in names])
    b.set_ylabel("VMs left untouched on good changes")
    for ax in (a, b):
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")  # anchored at the tick: no overlap
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _plot_duration(result: dict[str, Any], path: Path) -> bool:
    names = _strategies(result)
    data = [[r["duration_minutes"] for r in result["runs"] if r["strategy"] == n and not r["bench"]["bad_change"]]
            for n in names]
    if not any(data):
        return False
    fig, ax = _new_figure()
    ax.boxplot([d or [0.0] for d in data], tick_labels=names)
    # a few very long runs (a capacity wait, say) would squash every box: the axis stops above the highest upper
    # whisker and the runs beyond it are counted in a note
    values = [v for d in data for v in d]
    tops = []
    for d in data:
        if d:
            q1, q3 = np.percentile(d, [25, 75])
            tops.append(max([v for v in d if v <= q3 + 1.5 * (q3 - q1)], default=q3))
    limit = 1.25 * max(tops)
    beyond = [v for v in values if v > limit]
    ax.set_ylim(0, limit)
    if beyond:
        ax.set_title(f"{len(beyond)} run{'s' if len(beyond) != 1 else ''} above {limit:.0f} min not shown "
                     f"(longest {max(beyond):,.0f} min)", fontsize=9)
    ax.set_ylabel("minutes to the last action on production")
    _rotate_labels(ax)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _rotate_labels(ax: Any) -> None:
    """Tick labels at 30° anchored at their tick (right-aligned), so that long names do not overlap."""
    import matplotlib.pyplot as plt

    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")


def _plot_shadow_cost(result: dict[str, Any], path: Path) -> bool:
    names = _strategies(result)
    s = result["summary"]
    fig, ax = _new_figure()
    bars = ax.bar(names, [100.0 * s[n]["shadow_cost_ratio"] for n in names], color=[colour(n) for n in names])
    for bar, n in zip(bars, names, strict=True):
        ax.annotate(f"{s[n]['shadow_cost_usd']:,.0f} USD", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.axhline(2.0, color="black", lw=0.8, ls="--")
    ax.set_ylabel("shadow cost, % of fleet cost")
    _rotate_labels(ax)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _plot_capacity(result: dict[str, Any], path: Path) -> bool:
    names = _strategies(result)
    s = result["summary"]
    fig, ax = _new_figure()
    x = np.arange(len(names))
    ax.bar(x - 0.2, [s[n]["capacity_shortfall_vm_minutes"] for n in names], 0.4, label="shortfall VM-minutes",
           color="#d55e00")
    ax.bar(x + 0.2, [s[n]["extra_vm_minutes"] for n in names], 0.4, label="extra VM-minutes bought", color="#0072b2")
    ax.set_yscale("symlog", linthresh=100)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _plot_timeline(result: dict[str, Any], path: Path) -> bool:
    import matplotlib.pyplot as plt

    tl = result.get("timeline")
    if not tl:
        return False
    applied = sorted(x for x in tl["apply_at"] if x is not None)
    restored = sorted(x for x in tl["restore_start"] if x is not None)
    end = max([tl["duration_minutes"], *(s["gone"] for s in tl["shadows"])], default=60.0) + 30.0
    fig, axes = plt.subplots(4, 1, figsize=(11, 8.5), dpi=90, sharex=True,
                             gridspec_kw={"height_ratios": [1.2, 1.0, 1.4, 0.8]})
    a, b, c, d = axes
    for i, s in enumerate(tl["shadows"]):
        a.plot([s["created"], s["gone"]], [i, i], color="#1b9e77" if s["spot"] else "#e69f00", lw=1.2)
        if s["applied"] is not None:
            a.plot([s["applied"]], [i], "k|", ms=4)
    a.set_ylabel("shadows")
    a.set_title(f"{tl['strategy']} on {tl['scenario']} (seed {tl['seed']}): {tl['outcome']}", fontsize=10)
    pred = tl["predictions"]
    if pred["minute"] is not None:
        for s in pred["strata"]:
            risk = s["risk"] if s["risk"] is not None else -0.05
            b.scatter([pred["minute"]], [risk], s=10 + 2 * s["vms"], alpha=0.6,
                      color="#d55e00" if s["skipped"] else "#0072b2")
        b.axhline(0.5, color="black", lw=0.6, ls="--")
    b.set_ylabel("predicted\nfailure")
    b.set_ylim(-0.1, 1.05)
    steps = np.linspace(0, end, 600)
    impaired = [x for x in tl["impaired_at"] if x is not None]
    done = tl["restore_done"]
    imp_now = [sum(1 for i, t in enumerate(tl["impaired_at"]) if t is not None and t <= m
                   and (done[i] is None or done[i] > m)) for m in steps]
    c.step(applied, np.arange(1, len(applied) + 1), where="post", label="VMs changed", color="#0072b2")
    if restored:
        c.step(restored, np.arange(1, len(restored) + 1), where="post", label="VMs rolled back", color="#cc79a7")
    if impaired:
        c.plot(steps, imp_now, label="VMs impaired now (truth)", color="#d55e00")
    if tl.get("watch") and tl["watch"][0] is not None:
        w0, w1 = tl["watch"][0], tl["watch"][1] if tl["watch"][1] is not None else end
        for ax in (c, d):
            ax.axvspan(w0, w1, color="#116329", alpha=0.08, lw=0, label="production watch" if ax is c else None)
    c.set_ylabel("production VMs")
    c.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    extra_now = [sum(1 for up, down in tl["extra"] if up <= m and (down is None or down > m)) for m in steps]
    d.step(steps, extra_now, where="post", color="#009e73")
    d.set_ylabel("extra\ninstances")
    d.set_xlabel("minutes since the trigger")
    d.set_xlim(0, end)
    for ax in axes:
        ax.grid(alpha=0.3)
    return _save(fig, path)


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def markdown(result: dict[str, Any]) -> str:
    """The results as Markdown for the docs (bench/README.md holds this verbatim; a test checks it)."""
    m = result["meta"]
    more = m.get("good_seed_strategies")
    more_for = ", ".join(more) if isinstance(more, list) else "all"
    lines = [f"{m['runs']} runs: {len(m['scenarios'])} held-out scenarios x {len(m['strategies'])} strategies, "
             f"seeds file seed + {m.get('seed_offset', 0)}.. ({m['seeds']} per scenario; {m['good_seeds']} for good "
             f"changes of {more_for})"
             f"; {m.get('in_sample_runs', 0)} runs on data the model saw; {m['wall_seconds']:.0f} s wall on "
             f"{m['machine']}.", "",
             "| strategy | impaired VM-min | during bake | after bake | VMs impaired | missed bad | false halts (good) "
             "| good runs with exclusions | median min (good) | shadow cost |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in result["summary"].items():
        during, after = s.get("impaired_vm_minutes_during_bake", 0), s.get("impaired_vm_minutes_after_bake", 0)
        lines.append(f"| `{name}` | {s['impaired_vm_minutes']:,.0f} | {during:,.0f} | {after:,.0f} | "
                     f"{s['production_vms_impaired']:,} | {s['missed_bad_changes']}/{s['bad_runs']} | "
                     f"{s['false_halts']}/{s['good_runs']} | "
                     f"{s.get('good_runs_with_exclusions', 0)}/{s['good_runs']} | "
                     f"{s['median_duration_minutes_good']} | {s['shadow_cost_ratio']:.2%} |")
    lines += ["", "| target | measured | verdict |", "|---|---|---|"]
    for t in result.get("targets", []):
        verdict = "**met**" if t["met"] else "**missed**" if t["met"] is False else "not measurable"
        lines.append(f"| {t['target']} | {t['measured']} | {verdict} |")
    lines += ["", "What the shadows add on their own (impaired VM-minutes of bad changes):", "",
              "| effects that begin | shadow-predictive | without its watch | best peer | best peer +watch |",
              "|---|---:|---:|---:|---:|"]
    for c in contribution(result):
        bp, bw = c["best_peer"], c["best_peer_watch"]
        lines.append(f"| {c['onset']} | {_num(c[PROJECT])} | {_num(c[NO_WATCH])} | "
                     f"{f'{bp[1]:,.0f} ({bp[0]})' if bp else '-'} | {f'{bw[1]:,.0f} ({bw[0]})' if bw else '-'} |")
    lines += ["", "Families where a peer impairs fewer VM-minutes than `shadow-predictive`:", ""]
    lines += [f"* `{w['family']}` ({w['onset']}): `{w['peer']}` {w['theirs']:,.0f} vs {w['ours']:,.0f}; ours: "
              f"{'; '.join(w['our_decisions'])[:400]}" for w in peer_wins(result)] or ["* none"]
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def with_results(readme: str, result: dict[str, Any]) -> str:
    """``readme`` with the block between the results markers replaced by :func:`markdown` of ``result``."""
    if BEGIN not in readme or END not in readme:
        raise ConfigurationError(f"no {BEGIN} ... {END} block to write the results into")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{markdown(result)}{END}{tail}"


def _html(result: dict[str, Any], figures: list[tuple[str, str]]) -> str:
    e = html.escape
    meta = result["meta"]
    rows = []
    for name, s in result["summary"].items():
        rows.append("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in (
            name, s["runs"], f"{s['impaired_vm_minutes']:,.0f}", s["production_vms_impaired"],
            f"{s['false_halts']}/{s['good_runs']}", s["vms_excluded_on_good"],
            f"{s['missed_bad_changes']}/{s['bad_runs']}", s["median_duration_minutes_good"],
            f"{s['shadow_cost_ratio']:.2%}", f"{s['capacity_shortfall_vm_minutes']:,.0f}",
            f"{s['extra_vm_minutes']:,.0f}", s["wall_seconds"])) + "</tr>")
    targets = []
    for t in result.get("targets", []):
        verdict = "met" if t["met"] else "missed" if t["met"] is False else "not measurable"
        why = "".join(f"<li>{e(w)}</li>" for w in t["why"])
        targets.append(f"<tr class='{verdict.split()[0]}'><td>{e(t['target'])}</td><td>{e(t['measured'])}</td>"
                       f"<td>{verdict}</td><td>{'<ul>' + why + '</ul>' if why else ''}</td></tr>")
    figs = "".join(f"<figure><img src='{e(n)}' alt='{e(n)}'><figcaption>{c}</figcaption></figure>"
                   for n, c in figures)

    def pair(v: tuple[str, float] | None) -> str:
        return f"{v[1]:,.0f} ({v[0]})" if v else "-"

    contrib = "".join(f"<tr><td>{e(c['onset'])}</td><td>{_num(c[PROJECT])}</td><td>{_num(c[NO_WATCH])}</td>"
                      f"<td>{e(pair(c['best_peer']))}</td><td>{e(pair(c['best_peer_watch']))}</td></tr>"
                      for c in contribution(result))
    wins = "".join(f"<li>{e(w['family'])}: {e(w['peer'])} {w['theirs']:,.0f} vs ours {w['ours']:,.0f} "
                   f"({e(str(w['onset']))}); ours: {e('; '.join(w['our_decisions']))}</li>"
                   for w in peer_wins(result)) or "<li>none</li>"
    skipped = ", ".join(f"{s['scenario']} ({s['reason']})" for s in meta.get("skipped", []))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shadow-rollout benchmark</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; vertical-align: top; }}
td:first-child, th:first-child {{ text-align: left; }}
tr.met td:nth-child(3) {{ color: #1b7e37; font-weight: bold; }}
tr.missed td:nth-child(3) {{ color: #b00; font-weight: bold; }}
.targets td {{ text-align: left; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }} figcaption {{ font-size: 0.9em; color: #555; }}
code {{ background: #f4f4f4; padding: 0 0.2em; }}
</style></head><body>
<h1>shadow-rollout benchmark</h1>
<p>{meta['runs']} runs: {len(meta['scenarios'])} scenarios × {len(meta['strategies'])} strategies × {meta['seeds']}
seeds ({meta['good_seeds']} for good changes), {meta['workers']} worker processes, {meta['wall_seconds']:.0f} s wall
on {e(meta['machine'])}.<br>Command: <code>{e(meta.get('command', ''))}</code><br>
Skipped: {e(skipped) or 'none'}. What each figure means, and why targets are missed: <code>bench/README.md</code>.</p>
<h2>Targets (shadow-predictive)</h2>
<table class="targets"><tr><th>target</th><th>measured</th><th>verdict</th><th>why not (the numbers)</th></tr>
{''.join(targets)}</table>
<h2>What the shadows add on their own</h2>
<p>Impaired VM-minutes of bad changes, with and without the 24-hour production watch on both sides.</p>
<table><tr><th>effects that begin</th><th>shadow-predictive</th><th>without its watch</th><th>best peer</th>
<th>best peer +watch</th></tr>{contrib}</table>
<h2>Families where a peer impairs fewer VM-minutes</h2>
<ul>{wins}</ul>
<h2>Summary per strategy</h2>
<table><tr><th>strategy</th><th>runs</th><th>impaired VM-min</th><th>VMs impaired</th><th>false halts</th>
<th>excluded on good</th><th>missed bad</th><th>median min (good)</th><th>shadow cost</th><th>shortfall VM-min</th>
<th>extra VM-min</th><th>wall s</th></tr>
{''.join(rows)}</table>
{figs}
</body></html>
"""
