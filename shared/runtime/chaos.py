"""Chaos for the local Durable runner: at-least-once delivery and worker crashes, seeded.

Durable Functions runs an activity at least once: a worker that dies between an activity's side effect and the
checkpoint of its result has the activity run again (a *redelivery*), and a worker that crashes loses every work
item it holds; the orchestrations then resume from their histories, while Azure, the fleet and the store keep
what was done to them. The runner asks :class:`Chaos` after each activity execution whether to strike.

So that a disturbed run differs from an undisturbed one only by what at-least-once delivery causes, a
re-execution draws its faults exactly as the first execution did: :class:`FaultDraws` lets the runner rewind the
fault streams (the simulator's per-operation attempt counters) to where they stood when the work item first ran.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar, cast

T = TypeVar("T")

DEFAULT_RATE = 0.3
CRASH_SHARE = 0.25
"""Of the strikes, the share that are worker crashes (the rest are redeliveries of one activity)."""
DEATH_SHARE = 0.2
"""Chance, relative to a crash after an activity, of a death right after one side effect inside it."""


class WorkerDied(BaseException):
    """The worker died inside an activity, right after a side effect, before anything else was recorded.

    A BaseException, so that no ``except Exception`` in an activity can swallow it, as no code survives a
    real worker's death."""


class Strike(StrEnum):
    REDELIVER = "redeliver"
    CRASH = "crash"


@dataclass
class ChaosStats:
    redelivered: int = 0
    """Activities run again after they completed (their first result lost)."""
    crashes: int = 0
    """Worker crashes; every in-flight activity of the moment was run again."""
    reexecuted: int = 0
    """Activity executions caused by crashes."""

    def to_dict(self) -> dict[str, int]:
        return {"redelivered": self.redelivered, "crashes": self.crashes}


@dataclass
class Chaos:
    """Seeded strikes: after each first execution of an activity, with probability ``rate``, either that
    activity is redelivered, or (one strike in four) the worker crashes."""

    seed: int
    rate: float = DEFAULT_RATE
    stats: ChaosStats = field(default_factory=ChaosStats)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"chaos rate must be within 0..1, not {self.rate}")
        self._rng = random.Random(self.seed)
        self._deaths = random.Random(self.seed * 7919 + 1)
        self.armed = False
        """Deaths strike only while an activity runs (the runner arms chaos around each execution)."""
        self.current: tuple[str, str, int] | None = None
        """The activity running now: (name, instance id, task id)."""

    def begin(self, current: tuple[str, str, int]) -> None:
        """An execution of an activity starts: (name, instance id, task id)."""
        self.current = current

    def after_side_effect(self, what: str) -> None:
        """Called right after a side effect: the worker may die here (seeded)."""
        if self.armed and self._deaths.random() < self.rate * CRASH_SHARE * DEATH_SHARE:
            raise WorkerDied(what)

    def strike(self) -> Strike | None:
        if self._rng.random() >= self.rate:
            return None
        return Strike.CRASH if self._rng.random() < CRASH_SHARE else Strike.REDELIVER


class FaultDraws:
    """Rewindable fault streams: ``mark()`` before a work item runs, ``replaying(mark)`` around its re-run.

    Counters are merged afterwards (the larger of the two), so draws made by other work items in between are
    never repeated.
    """

    def __init__(self, read: Callable[[], dict[Any, int]], write: Callable[[dict[Any, int]], None]) -> None:
        self._read = read
        self._write = write

    def mark(self) -> dict[Any, int]:
        return dict(self._read())

    @contextmanager
    def replaying(self, mark: dict[Any, int]) -> Iterator[None]:
        now = dict(self._read())
        self._write(dict(mark))
        try:
            yield
        finally:
            after = self._read()
            merged = dict(now)
            for k, v in after.items():
                merged[k] = max(v, merged.get(k, 0))
            self._write(merged)


def mortal(port: T, chaos: Chaos, methods: Iterable[str]) -> T:
    """``port`` whose named methods may be followed by the worker's death (after their side effect)."""
    names = set(methods)

    class Mortal:
        def __getattr__(self, name: str) -> Any:
            attr = getattr(port, name)
            if name not in names:
                return attr

            @functools.wraps(attr)
            def call(*args: Any, **kwargs: Any) -> Any:
                result = attr(*args, **kwargs)
                chaos.after_side_effect(f"{type(port).__name__}.{name}")
                return result

            return call

    return cast(T, Mortal())
