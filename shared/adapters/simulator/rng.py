"""Counter-based randomness: every draw is a pure function of (seed, stream, keys...).

Draws do not depend on the order in which the strategy asks for them, so two strategies (or two backends)
see the same world, and telemetry can be generated for any window of any VM on demand.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtri

_C1 = np.uint64(0x9E3779B97F4A7C15)
_C2 = np.uint64(0xBF58476D1CE4E5B9)
_C3 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_TO_UNIT = 1.0 / 2.0**64


class Stream(IntEnum):
    VM_MEAN = 1
    LOAD = 2
    AFFECT = 3
    CPU = 4
    MEM = 5
    NET = 6
    ERRORS = 7
    HEALTH = 8
    APPLY = 9
    LATENCY = 10
    EVICT = 11
    FAULT = 12
    MEM_BASE = 13
    PLACEMENT = 14
    SHADOW_LOAD = 15
    SPIKE = 16
    GAP = 17


def _mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    x = (x ^ (x >> _S30)) * _C2
    x = (x ^ (x >> _S27)) * _C3
    return x ^ (x >> _S31)


def hash64(seed: int, stream: int, *keys: ArrayLike) -> NDArray[np.uint64]:
    """Broadcast hash of integer keys; wraps modulo 2**64 on purpose."""
    with np.errstate(over="ignore"):
        h = _mix(np.asarray((seed & 0xFFFFFFFF) << 8 | (stream & 0xFF), dtype=np.uint64) * _C1 + _C1)
        for k in keys:
            kk = np.asarray(k).astype(np.int64).astype(np.uint64)
            h = _mix(h ^ (kk * _C1 + _C2))
    return h


def uniform(seed: int, stream: int, *keys: ArrayLike) -> NDArray[np.float64]:
    """Uniform in the open interval (0, 1)."""
    h = hash64(seed, stream, *keys)
    return (np.asarray(h >> np.uint64(11), dtype=np.float64) + 0.5) * (2.0**11 * _TO_UNIT)


def normal(seed: int, stream: int, *keys: ArrayLike) -> NDArray[np.float64]:
    return np.asarray(ndtri(uniform(seed, stream, *keys)), dtype=np.float64)


def text_key(text: str) -> int:
    """A stable integer key for a string (resource names, operation names)."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=7).digest(), "big")


_POISSON_EXACT_MAX = 30.0


def poisson(u: NDArray[np.float64], lam: NDArray[np.float64]) -> NDArray[np.float64]:
    """Poisson draws by inverting the CDF at ``u`` (exact up to a rate of 30, normal above).

    Much faster than scipy's generic ``ppf`` and, like it, a pure function of ``u``.
    """
    u = np.asarray(u, dtype=float)
    lam = np.broadcast_to(np.asarray(lam, dtype=float), u.shape)
    out = np.zeros(u.shape)
    small = lam <= _POISSON_EXACT_MAX
    if small.any():
        us, ls = u[small], lam[small]
        p = np.exp(-ls)
        cdf = p.copy()
        k = np.zeros(us.shape)
        for i in range(1, 120):
            more = us > cdf
            if not more.any():
                break
            k += more
            p = p * ls / i
            cdf = cdf + p
        out[small] = k
    if (~small).any():
        ll = lam[~small]
        out[~small] = np.maximum(0.0, np.round(ll + np.sqrt(ll) * ndtri(u[~small])))
    return out
