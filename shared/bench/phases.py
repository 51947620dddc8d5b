"""Where a good change's time goes: the phases of a ``shadow-predictive`` run, read from its outcome's decisions.

Why: the duration target compares one number, but only the phases say which wait to shorten. Each phase ends at a
mark found in the run's own decisions (minutes since the trigger):

* ``shadows``: until the shadows are up and driven at their sources' load (``shadow_load``);
* ``baseline``: until the change reaches the shadows and their bake starts; the analyses' reasons say how far into
  the bake they are ("bake minute N" at minute M: the bake began at M - N);
* ``bake``: until production is planned (``plan_waves``);
* ``waves``: until the last action on production (the outcome's ``duration_minutes``).

A mark the run does not have (a rollout halted before production, a later design that drops the separate
baseline) leaves its phase out; the next phase then runs from the previous mark found, so the phases found always
add up to the duration.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

PHASES = ("shadows", "baseline", "bake", "waves")
_BAKE_MINUTE = re.compile(r"\bbake minute (\d+(?:\.\d+)?)")


def _first(kind: str) -> Callable[[dict[str, Any]], float | None]:
    def mark(run: dict[str, Any]) -> float | None:
        return next((float(d["minute"]) for d in run.get("decisions", []) if d.get("kind") == kind), None)
    return mark


def _bake_start(run: dict[str, Any]) -> float | None:
    for d in run.get("decisions", []):
        if d.get("kind") == "analysis":
            m = _BAKE_MINUTE.search(str(d.get("reason", "")))
            if m:
                return float(d["minute"]) - float(m.group(1))
    return None


def _last_production_action(run: dict[str, Any]) -> float | None:
    return float(run["duration_minutes"]) if _first("plan_waves")(run) is not None else None


MARKS: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "shadows": _first("shadow_load"),
    "baseline": _bake_start,
    "bake": _first("plan_waves"),
    "waves": _last_production_action,
}
"""Each phase's end mark, in order."""


def phase_durations(run: dict[str, Any]) -> dict[str, float]:
    """The minutes of each phase whose end mark the run has, from the previous mark found (or the trigger)."""
    out: dict[str, float] = {}
    previous = 0.0
    for phase in PHASES:
        end = MARKS[phase](run)
        if end is None or not math.isfinite(end):
            continue
        out[phase] = round(max(0.0, end - previous), 3)
        previous = max(previous, end)
    return out


def phase_breakdown(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, float | int]]:
    """Median and 90th percentile of each phase over the good-change runs that reached production."""
    good = [r for r in runs if not r.get("bench", {}).get("bad_change", False) and _first("plan_waves")(r) is not None]
    per_run = [phase_durations(r) for r in good]
    out: dict[str, dict[str, float | int]] = {}
    for phase in PHASES:
        values = np.array([p[phase] for p in per_run if phase in p], dtype=np.float64)
        if values.size:
            out[phase] = {"runs": int(values.size), "median": round(float(np.median(values)), 1),
                          "p90": round(float(np.percentile(values, 90)), 1)}
    return out
