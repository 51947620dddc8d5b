"""In-process scale-set leases: the simulator's default and the model of the Table-storage adapter.

Why a lease and not a durable entity: a lease is a row per scale set (partition ``lease``, row = the lower-cased
resource id) written with a conditional insert, which Table storage makes atomic; it needs no entity support in
the local runner, it can be read by any function (the HTTP status, the intake's early refusal), and a stale one
(its rollout's instance is gone) is visible and can be broken by the intake. See docs/intake.md.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

from ..ports import LeaseConflict, LeaseResult, Leases


class InMemoryLeases(Leases):
    def __init__(self) -> None:
        self._held: dict[str, LeaseConflict] = {}
        self._lock = threading.Lock()

    def acquire(self, resources: Sequence[str], holder: str, *, now: datetime) -> LeaseResult:
        keys = [r.lower() for r in resources]
        with self._lock:
            conflicts = [self._held[k] for k in keys if k in self._held and self._held[k].holder != holder]
            if conflicts:
                return LeaseResult(False, conflicts)
            for k in keys:
                self._held.setdefault(k, LeaseConflict(k, holder, now.isoformat()))
            return LeaseResult(True)

    def holders(self, resources: Sequence[str]) -> dict[str, LeaseConflict]:
        with self._lock:
            return {k: self._held[k] for k in (r.lower() for r in resources) if k in self._held}

    def release(self, holder: str, resources: Sequence[str] | None = None) -> int:
        with self._lock:
            keys = [k for k, v in self._held.items() if v.holder == holder
                    and (resources is None or k in {r.lower() for r in resources})]
            for k in keys:
                del self._held[k]
            return len(keys)
