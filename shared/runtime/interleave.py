"""Seeded interleaving of the activities of one fan-out, for the local Durable runner.

In Azure the activities a ``task_all`` schedules run at the same time, and meet in the rollout store. Here
each runs on a thread of its own, but only one runs at a time: at every store call (a *checkpoint*) the
running activity hands over to one chosen by a seeded random generator, which may be itself. So the
activities really interleave at the points where they can lose each other's updates, yet a run is a pure
function of its inputs and the seed: the same scenario and seed give the same outcome, and a test can run
several seeds and compare. Each activity keeps its own clock (the simulator's time is per activity), set
back on every hand-over.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..ports import RolloutStore, RowWrite, StoredRow

WAIT_SECONDS = 600.0
"""No activity holds the turn this long in a test or a simulation: longer means a bug, so it is raised."""


@dataclass
class _Group:
    clocks: list[datetime]
    done: list[bool]
    running: int = -1


@dataclass
class Outcome:
    value: Any
    error: BaseException | None
    finished_at: datetime


class Interleaver:
    """Runs a fan-out's activities one at a time, switching at checkpoints as a seeded generator picks."""

    def __init__(self, seed: int, *, set_clock: Callable[[datetime], None], read_clock: Callable[[], datetime]) -> None:
        self._rng = random.Random(seed)
        self._set_clock = set_clock
        self._read_clock = read_clock
        self._cond = threading.Condition()
        self._local = threading.local()
        self._group: _Group | None = None
        self.switches = 0
        """Hand-overs to another activity so far (a test checks that interleaving happened)."""
        self.history: list[int] = []
        """The activity (its index in its fan-out) given the turn at each hand-over, over the whole run."""

    def run(self, jobs: Sequence[Callable[[], Any]], start: datetime) -> list[Outcome]:
        """Run the jobs from ``start`` as if in parallel; each one's result (or error) and its own end time."""
        group = _Group(clocks=[start] * len(jobs), done=[False] * len(jobs))
        outcomes: list[Outcome | None] = [None] * len(jobs)

        def body(i: int) -> None:
            self._local.index = i
            self._wait_turn(group, i)
            value: Any = None
            error: BaseException | None = None
            try:
                value = jobs[i]()
            except BaseException as exc:  # handed to the runner, which records it as the activity's failure
                error = exc
            with self._cond:
                outcomes[i] = Outcome(value, error, max(self._read_clock(), group.clocks[i]))
                group.done[i] = True
                self._pass_turn(group)

        self._group = group
        threads = [threading.Thread(target=body, args=(i,), name=f"activity-{i}", daemon=True)
                   for i in range(len(jobs))]
        for t in threads:
            t.start()
        with self._cond:
            self._pass_turn(group)
        for t in threads:
            t.join(WAIT_SECONDS)
            if t.is_alive():
                raise RuntimeError("an interleaved activity did not finish")
        self._group = None
        self._set_clock(start)
        return [o for o in outcomes if o is not None]

    def checkpoint(self) -> None:
        """Called before each store operation: maybe hand the turn to another activity of the group."""
        group = self._group
        i = getattr(self._local, "index", None)
        if group is None or i is None:
            return  # not inside a fan-out: nothing to interleave with
        with self._cond:
            group.clocks[i] = self._read_clock()
            self._pass_turn(group)
        self._wait_turn(group, i)

    # ------------------------------------------------------------------ internals (hold self._cond)
    def _pass_turn(self, group: _Group) -> None:
        ready = [j for j, d in enumerate(group.done) if not d]
        if ready:
            nxt = self._rng.choice(ready)
            if nxt != group.running:
                self.switches += 1
            group.running = nxt
            self.history.append(nxt)
        self._cond.notify_all()

    def _wait_turn(self, group: _Group, i: int) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: group.running == i, timeout=WAIT_SECONDS):
                raise RuntimeError(f"activity {i} never got its turn back")
            self._set_clock(group.clocks[i])


class InterleavedStore(RolloutStore):
    """The rollout store with a checkpoint before every call: where parallel activities can meet."""

    def __init__(self, inner: RolloutStore, interleaver: Interleaver) -> None:
        self.inner = inner
        self.interleaver = interleaver

    def rows(self, rollout_id: str, kind: str) -> dict[str, StoredRow]:
        self.interleaver.checkpoint()
        return self.inner.rows(rollout_id, kind)

    def rows_since(self, rollout_id: str, kind: str, generation: int | None
                   ) -> tuple[int | None, dict[str, StoredRow] | None]:
        self.interleaver.checkpoint()
        return self.inner.rows_since(rollout_id, kind, generation)

    def write(self, rollout_id: str, kind: str, rows: Mapping[str, RowWrite]) -> dict[str, str]:
        self.interleaver.checkpoint()
        return self.inner.write(rollout_id, kind, rows)

    def rollout_ids(self) -> list[str]:
        return self.inner.rollout_ids()
