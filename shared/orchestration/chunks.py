"""How batch work is split for fan-out: at most MAX_FANOUT activities, so no history grows with the fleet."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

MAX_FANOUT = 16
MIN_CHUNK = 50


def chunk_count(n: int) -> int:
    if n <= 0:
        return 0
    return min(MAX_FANOUT, math.ceil(n / MIN_CHUNK))


def chunk(items: Sequence[T], index: int) -> list[T]:
    """The ``index``-th of ``chunk_count(len(items))`` contiguous slices."""
    k = chunk_count(len(items))
    size = math.ceil(len(items) / k) if k else 0
    return list(items[index * size:(index + 1) * size])
