"""The simulator's long-running operations: begun at once, ended when the virtual clock passes their end.

The world computes an operation's course when it starts (every state change has its time), so a begin runs the
batch call, records when it ends in the world's book, and puts the clock back to just after the request was
accepted: the begin activity returns in seconds of simulated time, and polls answer ``running`` with the exact
time left as ``Retry-After`` until the orchestrator's timer has brought the clock to the end.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ...ports import DiskSnapshots, Fleet, ShadowPool
from ..recorded_operations import RecordedOperations
from .adapters import to_datetime
from .world import FleetWorld

ACCEPT_MINUTES = 1.0 / 60.0
"""How long ARM takes to accept a long-running request (its 201/202): one second of the clock."""


class SimOperations(RecordedOperations):
    def __init__(self, world: FleetWorld, fleet: Fleet, shadows: ShadowPool, snapshots: DiskSnapshots) -> None:
        super().__init__(fleet, shadows, snapshots, world.operations)
        self.world = world

    def now(self) -> datetime:
        return to_datetime(self.world.clock.now)

    def run(self, call: Callable[[], Any]) -> tuple[Any, datetime]:
        clock = self.world.clock
        start = clock.now
        try:
            result = call()
            end = max(clock.now, start)
        finally:
            clock.now = start + min(ACCEPT_MINUTES, max(clock.now - start, 0.0))
        return result, to_datetime(end)
