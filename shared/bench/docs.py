"""The figures bench/README.md shows, rendered from the results files, so that a test can hold the two together
(tests/unit/test_docs.py): the results table, the scale table, and the figures quoted in its prose."""

from __future__ import annotations

from typing import Any


def results_table(summary: dict[str, Any]) -> list[str]:
    """The strategy table of ``summary.json`` as markdown rows (header and alignment first)."""
    rows = ["| strategy | impaired VM-min | VMs impaired | false halts (good) | VMs excluded on good | missed bad | "
            "median min (good) | shadow cost | shortfall VM-min | over oracle's | extra VM-min |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in summary["summary"].items():
        rows.append(f"| `{name}` | {s['impaired_vm_minutes']:,.0f} | {s['production_vms_impaired']:,} | "
                    f"{s['false_halts']}/{s['good_runs']} | {s['vms_excluded_on_good']:,} | "
                    f"{s['missed_bad_changes']}/{s['bad_runs']} | {s['median_duration_minutes_good']:g} | "
                    f"{100 * s['shadow_cost_ratio']:.2f}% | {s['capacity_shortfall_vm_minutes']:,.0f} | "
                    f"{s['capacity_shortfall_over_oracle_vm_minutes']:,.0f} | {s['extra_vm_minutes']:,.0f} |")
    return rows


def targets_table(summary: dict[str, Any]) -> list[str]:
    rows = ["| target | measured | verdict |", "|---|---|---|"]
    for t in summary["targets"]:
        verdict = "**met**" if t["met"] else "**missed**" if t["met"] is False else "n/a"
        rows.append(f"| {t['target']} | {t['measured']} | {verdict} |")
    return rows


def scale_table(scale: dict[str, Any]) -> list[str]:
    rows = ["| VMs | wall s | peak MiB | turns | events replayed | longest history (events / KiB) | replay s | "
            "`predict` VMs/s |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in scale["runs"]:
        rows.append(f"| {r['vms']:,} | {r['wall_seconds']:.1f} | {r['peak_rss_mib']:.0f} | "
                    f"{r['orchestration_turns']} | "
                    f"{r['history_events_replayed']:,} | {r['max_history_events']} / "
                    f"{r['max_history_bytes'] / 1024:.0f} | {r['replay_seconds']:.1f} | "
                    f"{round(r['inference_vms_per_second'], -3):,.0f} |")
    return rows


def quoted_figures(summary: dict[str, Any], scale: dict[str, Any], startup: dict[str, Any]) -> list[str]:
    """Phrases of the prose that carry a figure, each as the results files make it."""
    meta = summary["meta"]
    sp = summary["summary"]["shadow-predictive"]
    big = max(scale["runs"], key=lambda r: r["vms"])
    g = scale["growth"]
    return [
        f"## Results (`make bench`, {meta['runs']:,} runs in {meta['wall_seconds']:.0f} s on 2 cores)",
        f"{len(meta['scenarios'])} scenarios",
        f"Over that floor `shadow-predictive` adds {sp['capacity_shortfall_over_oracle_vm_minutes']:,.0f}",
        f"replay is {big['replay_seconds']:.1f} s of {big['wall_seconds']:.1f} s at {big['vms']:,} VMs",
        f"wall time **{g['wall_seconds']:.2f}**",
        f"replay time **{g['replay_seconds']:.2f}**",
        f"The corpus run above took {meta['wall_seconds']:.0f} s ({meta['wall_seconds'] / 60:.1f} minutes)",
        f"median of {startup['median_seconds']:.2f} s (from {startup['min_seconds']:.2f} to "
        f"{startup['max_seconds']:.2f} s) over {startup['repeats']} fresh interpreters",
    ]
