"""The benchmark report: the issue's targets with the measured numbers, PNG plots (matplotlib, Agg) and one HTML page.

matplotlib is imported lazily, only to draw, so the rest of the CLI runs without it.
"""

from __future__ import annotations

import html
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..domain.errors import ConfigurationError, ShadowRolloutError

PROJECT = "shadow-predictive"
BASELINE_DURATION = "linear-alarm"
BASELINE_CAPACITY = "vmss-rolling"
FLOOR = "oracle"
MIN_GOOD_RUNS = 200
COLOURS = {"shadow-predictive": "#1b9e77", "vmss-rolling": "#0072b2", "canary-mannwhitney": "#e69f00",
           "linear-alarm": "#cc79a7", "threshold-only": "#56b4e9", "no-guard": "#d55e00", "oracle": "#999999"}


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
    peers = {k: v for k, v in summary.items() if k not in (PROJECT, FLOOR)}
    if peers:
        best = min(peers, key=lambda k: peers[k]["impaired_vm_minutes"])
        limit = 0.1 * peers[best]["impaired_vm_minutes"]
        out.append(_target(
            "impaired VM-minutes <= 1/10 of the best non-oracle peer's",
            f"{sp['impaired_vm_minutes']:,.0f} vs {best} {peers[best]['impaired_vm_minutes']:,.0f} "
            f"(limit {limit:,.0f}; ratio {_ratio(sp['impaired_vm_minutes'], peers[best]['impaired_vm_minutes'])})",
            sp["impaired_vm_minutes"] <= limit, _why_impaired(runs, best)))
    rate = sp["false_halts"] / sp["good_runs"] if sp["good_runs"] else math.nan
    enough = sp["good_runs"] >= MIN_GOOD_RUNS
    out.append(_target(
        f"false halts <= 1% over at least {MIN_GOOD_RUNS} good runs",
        f"{sp['false_halts']}/{sp['good_runs']} good runs = {rate:.1%}",
        (rate <= 0.01) if enough else None,
        _why_false_halts(runs) + ([] if enough else [f"only {sp['good_runs']} good runs (< {MIN_GOOD_RUNS}): "
                                                     "run with more --good-seeds"])))
    out.append(_target("no VMs excluded on good changes", f"{sp['vms_excluded_on_good']} VMs left untouched on "
                                                         "good changes",
                       sp["vms_excluded_on_good"] == 0, _why_excluded(runs)))
    base = summary.get(BASELINE_DURATION)
    if base and base["median_duration_minutes_good"] and sp["median_duration_minutes_good"] is not None:
        limit = 1.5 * base["median_duration_minutes_good"]
        out.append(_target(
            f"median duration on good changes <= 1.5x {BASELINE_DURATION}'s",
            f"{sp['median_duration_minutes_good']:g} min vs {base['median_duration_minutes_good']:g} min "
            f"(limit {limit:g}; ratio "
            f"{_ratio(sp['median_duration_minutes_good'], base['median_duration_minutes_good'])})",
            sp["median_duration_minutes_good"] <= limit, _why_duration(runs)))
    cap = summary.get(BASELINE_CAPACITY)
    if cap:
        limit = 0.1 * cap["capacity_shortfall_vm_minutes"]
        out.append(_target(
            f"capacity shortfall <= 1/10 of {BASELINE_CAPACITY}'s (extra VM-minutes reported)",
            f"{sp['capacity_shortfall_vm_minutes']:,.0f} vs {cap['capacity_shortfall_vm_minutes']:,.0f} VM-min "
            f"(limit {limit:,.0f}; ratio "
            f"{_ratio(sp['capacity_shortfall_vm_minutes'], cap['capacity_shortfall_vm_minutes'])}); extra "
            f"VM-minutes bought {sp['extra_vm_minutes']:,.0f} (vs {cap['extra_vm_minutes']:,.0f})",
            sp["capacity_shortfall_vm_minutes"] <= limit, _why_shortfall(runs)))
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


def _why_impaired(runs: Sequence[dict[str, Any]], best: str) -> list[str]:
    mine = _per_scenario(runs, PROJECT, lambda r: r["impaired_vm_minutes"])
    theirs = _per_scenario(runs, best, lambda r: r["impaired_vm_minutes"])
    top = sorted(mine, key=lambda k: -mine[k])[:6]
    return [f"{k}: {mine[k]:,.0f} impaired VM-min (vs {best} {theirs.get(k, 0):,.0f})" for k in top if mine[k] > 0]


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


def _why_shortfall(runs: Sequence[dict[str, Any]]) -> list[str]:
    mine = _per_scenario(runs, PROJECT, lambda r: r["capacity"]["shortfall_vm_minutes"])
    theirs = _per_scenario(runs, BASELINE_CAPACITY, lambda r: r["capacity"]["shortfall_vm_minutes"])
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
        ax.bar(x + i * width - 0.4 + width / 2, vals, width, label=s, color=COLOURS.get(s))
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
    bars = a.bar(names, rates, color=[COLOURS.get(n) for n in names])
    for bar, n in zip(bars, names, strict=True):
        a.annotate(f"{s[n]['false_halts']}/{s[n]['good_runs']}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                   ha="center", va="bottom", fontsize=8)
    a.axhline(1.0, color="black", lw=0.8, ls="--")
    a.set_ylabel("false halts, % of good runs")
    b.bar(names, [s[n]["vms_excluded_on_good"] for n in names], color=[COLOURS.get(n) for n in names])
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
    bars = ax.bar(names, [100.0 * s[n]["shadow_cost_ratio"] for n in names], color=[COLOURS.get(n) for n in names])
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
<h2>Summary per strategy</h2>
<table><tr><th>strategy</th><th>runs</th><th>impaired VM-min</th><th>VMs impaired</th><th>false halts</th>
<th>excluded on good</th><th>missed bad</th><th>median min (good)</th><th>shadow cost</th><th>shortfall VM-min</th>
<th>extra VM-min</th><th>wall s</th></tr>
{''.join(rows)}</table>
{figs}
</body></html>
"""
