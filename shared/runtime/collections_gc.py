"""Fewer garbage collections while a local run holds its world, store and histories.

Why: a rollout of 10,000 VMs keeps hundreds of thousands of long-lived objects (the simulated fleet, the store's
rows, every instance's history), and CPython's collector walks them all again at each full collection. Measured
on the 10,000-VM scale run (``shared.bench.scale``): 11.6 s of 75 s went to 3,650 young and 25 full collections,
1.4 s with the youngest generation collected every 50,000 allocations instead of 700. Reference cycles are still
collected, only less often; a run's peak memory is in ``bench/results/scale.json`` (``peak_rss_mib``).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000
"""Allocations between collections of the youngest generation (CPython's default: 700)."""


_lock = threading.Lock()
_active = 0
_saved: tuple[int, ...] = ()


@contextmanager
def fewer_collections(young: int = YOUNG_THRESHOLD) -> Iterator[None]:
    """Raise the youngest generation's threshold (never lower it) while any such block runs, in any thread;
    the last one out puts the process's thresholds back."""
    global _active, _saved
    with _lock:
        if _active == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(max(young, _saved[0]), *_saved[1:])
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                gc.set_threshold(*_saved)
