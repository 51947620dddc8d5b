"""Azure's request budgets as one model: ARM's token buckets and Compute's call-rate policies.

One model, three users: the simulator's world (a logical write waits for its tokens, so durations include
what throttling costs on either backend), the Azure-shaped stand-in (a request without a token is answered
429 with ``Retry-After`` and the ``x-ms-ratelimit-remaining-*`` headers) and the adapters' own limiter (which
spends the same budget before it sends, so the stand-in is not the only guard). No Azure SDK import here.

Figures (docs/azure-adapters.md has the table):

* ARM, per subscription, per principal, per region and per kind: reads 250 burst refilled at 25/s, writes
  200 at 10/s, deletes 200 at 10/s; a global subscription limit of 15 times that across principals.
  https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling
* Compute, per region, per resource and per subscription, refills per minute (capacity / refill):
  https://learn.microsoft.com/azure/virtual-machines/compute-throttling-limits
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

ARM_SOURCE = "https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling"
COMPUTE_SOURCE = "https://learn.microsoft.com/azure/virtual-machines/compute-throttling-limits"
GLOBAL_FACTOR = 15
"""The global subscription limit is 15 times the per-principal one (ARM_SOURCE)."""


class ArmKind(StrEnum):
    READS = "reads"
    WRITES = "writes"
    DELETES = "deletes"


@dataclass(frozen=True)
class BucketSpec:
    capacity: float
    refill_per_second: float


ARM_BUCKETS: dict[ArmKind, BucketSpec] = {
    ArmKind.READS: BucketSpec(250, 25.0),
    ArmKind.WRITES: BucketSpec(200, 10.0),
    ArmKind.DELETES: BucketSpec(200, 10.0),
}


@dataclass(frozen=True)
class ComputePolicy:
    """A Compute call-rate policy: per-resource and per-subscription buckets (capacity, refill per minute)."""

    name: str
    resource: tuple[float, float] | None
    subscription: tuple[float, float]


def _p(name: str, resource: tuple[float, float] | None, subscription: tuple[float, float]) -> ComputePolicy:
    return ComputePolicy(name, resource, subscription)


COMPUTE_POLICIES: dict[str, ComputePolicy] = {p.name: p for p in (
    _p("PutVM", (12, 4), (1500, 500)),
    _p("UpdateVM", (12, 4), (1500, 500)),
    _p("DeleteVM", (12, 4), (1500, 500)),
    _p("LowCostGetVM", (36, 12), (24000, 8000)),
    _p("HighCostGetVM", None, (900, 300)),
    _p("GetOperation", (45, 15), (15000, 5000)),
    _p("PutVMSS", (12, 4), (375, 125)),
    _p("UpdateVMSS", (12, 4), (1500, 500)),
    _p("DeleteVMSS", (12, 4), (525, 175)),
    _p("LowCostGetVMSS", (36, 12), (2400, 800)),
    _p("HighCostGetVMSS", (30, 10), (1080, 360)),
    _p("UpdateVMSSVMs", (12, 4), (1500, 500)),
    _p("DeleteVMSSVMs", (12, 4), (1500, 500)),
    _p("GetVMSSVMs", (36, 12), (6000, 2000)),
)}


@dataclass(frozen=True)
class Charge:
    """What one request spends: one ARM token of its kind, and one of a Compute policy if it has one."""

    kind: ArmKind
    policy: str | None = None
    resource: str = ""


class TokenBucket:
    """A token bucket in seconds of some clock; tokens may go negative for reservations (a queue)."""

    def __init__(self, spec: BucketSpec, t: float = 0.0) -> None:
        self.spec = spec
        self.tokens = float(spec.capacity)
        self.t = t

    def refill(self, t: float) -> None:
        if t > self.t:
            self.tokens = min(self.spec.capacity, self.tokens + (t - self.t) * self.spec.refill_per_second)
            self.t = t

    def ready_at(self, t: float, n: float = 1.0) -> float:
        """When, at or after ``t``, ``n`` tokens are there (after the reservations already made)."""
        self.refill(t)
        missing = n - self.tokens
        return t if missing <= 1e-9 else t + missing / self.spec.refill_per_second


@dataclass
class Decision:
    ok: bool
    retry_after: float
    headers: dict[str, str] = field(default_factory=dict)
    overdrawn: bool = False
    """True if a taken token left a bucket below zero (never happens when every request asks first)."""


def classify(method: str, path: str) -> Charge:
    """The ARM kind and the Compute policy of a request (the Compute table groups REST APIs into policies)."""
    method = method.upper()
    kind = ArmKind.READS if method in ("GET", "HEAD") else ArmKind.DELETES if method == "DELETE" else ArmKind.WRITES
    low = path.lower().split("?", 1)[0].rstrip("/")
    seg = low.split("/")
    if "/providers/microsoft.compute/" not in low:
        return Charge(kind)
    if "operations" in seg:
        return Charge(ArmKind.READS, "GetOperation", seg[-1])
    if len(seg) < 8 or seg[5:7] != ["providers", "microsoft.compute"]:
        return Charge(kind)
    rtype, action = seg[7], seg[-1]
    getting, deleting = method == "GET", method == "DELETE" or action in ("deallocate", "poweroff", "delete",
                                                                          "simulateeviction")
    if rtype == "virtualmachinescalesets" and len(seg) >= 11 and seg[9] == "virtualmachines":
        vm = "/".join(seg[:11])  # an instance of a Uniform scale set
        return Charge(kind, "GetVMSSVMs" if getting else "DeleteVMSSVMs" if deleting else "UpdateVMSSVMs", vm)
    if rtype == "virtualmachinescalesets":
        ss = "/".join(seg[:9])
        if len(seg) == 8 or (getting and len(seg) == 10):  # lists, instance view
            return Charge(kind, "HighCostGetVMSS", "" if len(seg) == 8 else ss)
        if getting:
            return Charge(kind, "LowCostGetVMSS", ss)
        return Charge(kind, "DeleteVMSS" if deleting else "UpdateVMSS", ss)
    if rtype == "virtualmachines":
        if len(seg) == 8:
            return Charge(kind, "HighCostGetVM")
        vm = "/".join(seg[:9])
        if getting:
            return Charge(kind, "LowCostGetVM", vm)
        if method == "PUT" and len(seg) == 9:
            return Charge(kind, "PutVM", vm)
        return Charge(kind, "DeleteVM" if deleting and len(seg) <= 10 and action != "extensions" else "UpdateVM", vm)
    return Charge(kind, None, "/".join(seg[:9]))  # disks, snapshots: ARM's buckets only


class Budget:
    """The buckets of one subscription and region, in seconds of the caller's clock. Thread-safe."""

    def __init__(self, *, compute: bool = True) -> None:
        self.compute = compute
        self._buckets: dict[tuple[str, ...], TokenBucket] = {}
        self._lock = threading.Lock()

    def _keys(self, charge: Charge, principal: str) -> list[tuple[tuple[str, ...], BucketSpec]]:
        arm = ARM_BUCKETS[charge.kind]
        out = [(("arm", principal, charge.kind), arm),
               (("arm-global", charge.kind), BucketSpec(arm.capacity * GLOBAL_FACTOR,
                                                        arm.refill_per_second * GLOBAL_FACTOR))]
        policy = COMPUTE_POLICIES.get(charge.policy or "") if self.compute else None
        if policy is not None:
            cap, per_min = policy.subscription
            out.append((("compute", policy.name), BucketSpec(cap, per_min / 60.0)))
            if policy.resource is not None and charge.resource:
                cap, per_min = policy.resource
                out.append((("compute", policy.name, charge.resource), BucketSpec(cap, per_min / 60.0)))
        return out

    def _bucket(self, key: tuple[str, ...], spec: BucketSpec, t: float) -> TokenBucket:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = TokenBucket(spec, t)
        return b

    def reserve(self, charges: Iterable[Charge], principal: str, t: float) -> float:
        """The time at or after ``t`` when all these requests may be sent, spending their tokens then (FIFO)."""
        with self._lock:
            start = t
            pairs = [kv for c in charges for kv in self._keys(c, principal)]
            need: dict[tuple[str, ...], float] = {}
            specs: dict[tuple[str, ...], BucketSpec] = {}
            for key, spec in pairs:
                need[key] = need.get(key, 0.0) + 1.0
                specs[key] = spec
            for key, n in need.items():
                start = max(start, self._bucket(key, specs[key], t).ready_at(t, n))
            for key, n in need.items():  # spent now: a negative count is the queue of reservations
                self._buckets[key].tokens -= n
            return start

    def lower(self, key: tuple[str, ...], tokens: float, t: float) -> None:
        """What the service says is left, if lower than this count (someone else spent tokens too)."""
        with self._lock:
            b = self._buckets.get(key)
            if b is not None:
                b.refill(t)
                b.tokens = min(b.tokens, tokens)

    def hold(self, key: tuple[str, ...], seconds: float, t: float) -> None:
        """A 429 said wait ``seconds``: no token of this bucket before then."""
        with self._lock:
            b = self._buckets.get(key)
            if b is not None and seconds > 0:
                b.refill(t)
                b.tokens = min(b.tokens, -seconds * b.spec.refill_per_second)

    def take(self, charge: Charge, principal: str, t: float) -> Decision:
        """Spend one request's tokens at ``t`` if every bucket has one; else say how long to wait (429)."""
        with self._lock:
            pairs = self._keys(charge, principal)
            wait = max(self._bucket(k, s, t).ready_at(t) - t for k, s in pairs)
            if wait > 0:
                return Decision(False, wait, self._headers(charge, principal, pairs))
            for k, s in pairs:
                self._bucket(k, s, t).tokens -= 1.0
            overdrawn = any(self._buckets[k].tokens < -1e-9 for k, _ in pairs)
            return Decision(True, 0.0, self._headers(charge, principal, pairs), overdrawn)

    def _headers(self, charge: Charge, principal: str, pairs: list[tuple[tuple[str, ...], BucketSpec]]
                 ) -> dict[str, str]:
        def left(key: tuple[str, ...]) -> int:
            return max(0, math.floor(self._buckets[key].tokens))

        h = {f"x-ms-ratelimit-remaining-subscription-{charge.kind}": str(left(("arm", principal, charge.kind))),
             f"x-ms-ratelimit-remaining-subscription-global-{charge.kind}": str(left(("arm-global", charge.kind)))}
        compute = [(k, left(k)) for k, _ in pairs if k[0] == "compute"]
        if compute:
            h["x-ms-ratelimit-remaining-resource"] = ",".join(
                f"Microsoft.Compute/{k[1]}{'Resource' if len(k) > 2 else 'Subscription'};{n}" for k, n in compute)
        return h


def remaining(headers: dict[str, str] | object) -> dict[str, int]:
    """The ``x-ms-ratelimit-remaining-*`` counts of a response, by header suffix (``subscription-writes``,
    ``Microsoft.Compute/UpdateVMSubscription``...)."""
    out: dict[str, int] = {}
    items = headers.items() if hasattr(headers, "items") else []
    for k, v in items:
        k = str(k).lower()
        if k == "x-ms-ratelimit-remaining-resource":
            for part in str(v).split(","):
                name, _, n = part.partition(";")
                if n.strip().isdigit():
                    out[name.strip()] = int(n)
        elif k.startswith("x-ms-ratelimit-remaining-") and str(v).strip().isdigit():
            out[k.removeprefix("x-ms-ratelimit-remaining-")] = int(v)
    return out


def write_floor_seconds(writes: int, policy: str | None = "UpdateVM") -> float:
    """The least time ``writes`` write requests take under a fresh budget (the budget-derived floor)."""
    arm = ARM_BUCKETS[ArmKind.WRITES]
    floor = max(0.0, (writes - arm.capacity) / arm.refill_per_second)
    p = COMPUTE_POLICIES.get(policy or "")
    if p is not None:
        cap, per_min = p.subscription
        floor = max(floor, (writes - cap) / (per_min / 60.0))
    return floor
