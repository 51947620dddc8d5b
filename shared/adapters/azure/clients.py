"""How the Azure clients are built: in Azure (DefaultAzureCredential, ARM, regional Monitor endpoints) or
against the local stand-ins (a static token, plain http, a virtual clock).

Retries are azure-core's own policy. ``RETRY_TOTAL`` retries make ten attempts per request, as the simulator's
fault model assumes; in Azure the policy sleeps the ``Retry-After`` ARM sends. Against the stand-in the
transport's ``sleep`` costs no wall time: in process it tells the stand-in, which moves its virtual clock to
the end of the operation it asked the client to wait for; over a socket the stand-in moved it already.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
import requests.adapters
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.pipeline.transport import RequestsTransport

from .limits import Budget, Charge, classify, remaining

RETRY_TOTAL = 9
"""Ten attempts per request in all (the simulator's ``MAX_ARM_ATTEMPTS``)."""


class StaticTokenCredential(TokenCredential):
    """A fixed bearer token for local stand-ins; never used against Azure."""

    def __init__(self, token: str = "standin-token") -> None:
        self._token = token

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)


class PacingClock(Protocol):
    """The clock a limiter waits on: the wall clock in Azure, the stand-in's request clock in tests."""

    def now(self) -> float: ...

    def sleep_until(self, t: float) -> None: ...


class WallClock:
    def now(self) -> float:
        return time.monotonic()

    def sleep_until(self, t: float) -> None:
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class Pacer:
    """One limiter per subscription and principal: every ARM request spends its tokens before it is sent.

    It keeps the budget ARM and Compute keep (``limits.Budget``), so a batch of thousands is spread under
    it instead of answered 429; the ``x-ms-ratelimit-remaining-*`` headers of each answer lower its count
    when other clients of the same principal spent tokens too, and a 429's ``Retry-After`` holds it back.
    """

    def __init__(self, clock: PacingClock) -> None:
        self.clock = clock
        self.budget = Budget()
        self.waited = 0.0
        """Seconds requests were held back, summed."""
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        """Requests sent (their tokens spent here) whose answers have not come back, by ARM kind: an answer's
        remaining count cannot include them yet, so lowering to it must leave room for them."""

    def acquire(self, method: str, url: str) -> Charge | None:
        path = urlsplit(url).path
        if not _is_arm(path):
            return None
        charge = classify(method, path)
        t = self.clock.now()
        start = self.budget.reserve([charge], "self", t)
        with self._lock:
            self.waited += max(0.0, start - t)
            self._in_flight[charge.kind] = self._in_flight.get(charge.kind, 0) + 1
        if start > t:
            self.clock.sleep_until(start)
        return charge

    def unanswered(self, charge: Charge) -> None:
        """A request that got no answer (a connection error) is no longer in flight; its token stays spent."""
        with self._lock:
            self._in_flight[charge.kind] -= 1

    def observe(self, charge: Charge, status: int, headers: Any) -> None:
        """Lower the local count to what ARM says is left; after a 429, wait out its Retry-After."""
        left = remaining(headers)
        t = self.clock.now()
        with self._lock:
            self._in_flight[charge.kind] -= 1
            others = self._in_flight[charge.kind]
        server = left.get(f"subscription-{charge.kind}")
        if server is not None:
            self.budget.lower(("arm", "self", charge.kind), server - others, t)
        if status == 429:
            try:
                retry_after = float(headers.get("Retry-After") or 0)
            except ValueError:
                retry_after = 0.0
            self.budget.hold(("arm", "self", charge.kind), retry_after, t)


def _is_arm(path: str) -> bool:
    low = path.lower()
    return low.startswith("/subscriptions/") and not low.endswith("metrics:getbatch")


_PACERS: dict[tuple[str, str, int], Pacer] = {}
_PACERS_LOCK = threading.Lock()


def pacer_for(subscription_id: str, principal: str, clock: PacingClock) -> Pacer:
    """The one limiter of this subscription and principal (per clock: each stand-in has its own)."""
    key = (subscription_id.lower(), principal, id(clock))
    with _PACERS_LOCK:
        p = _PACERS.get(key)
        if p is None or p.clock is not clock:
            p = _PACERS[key] = Pacer(clock)
        return p


class PacedTransport(RequestsTransport):  # type: ignore[misc]
    """The requests transport, with every attempt (first tries, retries, polls) going through a :class:`Pacer`."""

    def __init__(self, pacer: Pacer, *, virtual: bool = False, mounts: dict[str, Any] | None = None,
                 on_wait: Any = None) -> None:
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        for prefix, custom in (mounts or {}).items():  # e.g. the stand-in in this process
            session.mount(prefix, custom)
        super().__init__(session=session, session_owner=True)
        self.pacer = pacer
        self.virtual = virtual
        self.on_wait = on_wait
        """Virtual waits are told to this (the in-process stand-in: a client's wait moves its clock)."""

    def send(self, request: Any, **kwargs: Any) -> Any:
        charge = self.pacer.acquire(request.method, request.url)
        try:
            response = super().send(request, **kwargs)
        except BaseException:
            if charge is not None:
                self.pacer.unanswered(charge)
            raise
        if charge is not None:
            self.pacer.observe(charge, response.status_code, response.headers)
        return response

    def sleep(self, duration: float) -> None:
        """Against the stand-in, waits (Retry-After, LRO polling) cost no wall time: the stand-in's clocks move."""
        if not self.virtual:
            time.sleep(duration)
        elif self.on_wait is not None:
            self.on_wait(duration)


class VirtualTimeTransport(PacedTransport):
    """For local emulators (Azurite): waits cost no wall time; nothing there is ARM, so nothing is paced."""

    def __init__(self) -> None:
        super().__init__(Pacer(WallClock()), virtual=True)


@dataclass(frozen=True)
class AzureSettings:
    """Where the adapters reach Azure. ``from_environment`` reads the Function App's settings."""

    subscription_id: str
    fleet_resource_group: str = "rg-fleet"
    shadow_resource_group: str = "rg-shadow-pool"
    location: str = "eastus"
    shadow_pool_name: str = "shadow-pool"
    shadow_subnet_id: str = ""
    workspace_id: str = "00000000-0000-0000-0000-000000000000"
    arm_url: str = "https://management.azure.com"
    metrics_url: str = "https://eastus.metrics.monitor.azure.com"
    """The metrics endpoint of ``location``'s region."""
    metrics_url_template: str = "https://{region}.metrics.monitor.azure.com"
    """The metrics endpoint of any other region: getBatch answers for its own region's resources only
    (``MetricsClient``'s ``endpoint``, azure-monitor-querymetrics 1.0.0: "The region should match the region of the
    requested resources"; https://learn.microsoft.com/azure/azure-monitor/metrics/migrate-to-batch-api)."""
    regions: tuple[str, ...] = ()
    """The regions the fleet's VMs are in, when more than ``location``'s (``SHADOW_ROLLOUT_REGIONS``)."""
    logs_url: str = "https://api.loganalytics.io/v1"
    local: bool = False
    """True against the stand-in: plain http, a static token, no wall-clock waits."""
    client_options: dict[str, Any] = field(default_factory=dict)
    pacing_clock: Any = None
    """The stand-in's request clock (``local``); the wall clock in Azure."""
    http_adapter: Any = None
    """A ``requests`` adapter for ``arm_url`` (the in-process stand-in); None: the network."""

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None) -> AzureSettings:
        e = dict(os.environ if env is None else env)

        def get(name: str, default: str) -> str:
            return e.get(f"SHADOW_ROLLOUT_{name}", default)

        sub = e.get("AZURE_SUBSCRIPTION_ID") or get("SUBSCRIPTION_ID", "")
        if not sub:
            from ...domain.errors import ShadowRolloutError

            raise ShadowRolloutError("SHADOW_ROLLOUT_BACKEND=azure needs AZURE_SUBSCRIPTION_ID")
        location = get("LOCATION", "eastus")
        return cls(subscription_id=sub, fleet_resource_group=get("FLEET_RESOURCE_GROUP", "rg-fleet"),
                   shadow_resource_group=get("SHADOW_RESOURCE_GROUP", "rg-shadow-pool"), location=location,
                   shadow_pool_name=get("SHADOW_POOL_NAME", "shadow-pool"),
                   shadow_subnet_id=get("SHADOW_SUBNET_ID", ""), workspace_id=get("WORKSPACE_ID", ""),
                   metrics_url=get("METRICS_URL", f"https://{location}.metrics.monitor.azure.com"),
                   regions=tuple(r.strip() for r in get("REGIONS", "").split(",") if r.strip()),
                   logs_url=get("LOGS_URL", "https://api.loganalytics.io/v1"))

    @classmethod
    def for_standin(cls, url: str, *, subscription_id: str, location: str, fleet_resource_group: str,
                    shadow_resource_group: str, pacing_clock: Any = None,
                    http_adapter: Any = None, regions: tuple[str, ...] = ()) -> AzureSettings:
        return cls(subscription_id=subscription_id, fleet_resource_group=fleet_resource_group,
                   shadow_resource_group=shadow_resource_group, location=location,
                   shadow_subnet_id=f"/subscriptions/{subscription_id}/resourceGroups/{shadow_resource_group}/providers"
                                    "/Microsoft.Network/virtualNetworks/shadow-vnet/subnets/shadows",
                   arm_url=url, metrics_url=f"{url}/metrics/{location}",
                   metrics_url_template=f"{url}/metrics/{{region}}", regions=regions, logs_url=f"{url}/v1",
                   local=True, pacing_clock=pacing_clock, http_adapter=http_adapter)

    def metrics_endpoint(self, region: str) -> str:
        """The metrics endpoint that answers for VMs of ``region``."""
        if region.lower() == self.location.lower():
            return self.metrics_url
        return self.metrics_url_template.format(region=region)

    def credential(self) -> TokenCredential:
        if self.local:
            return StaticTokenCredential()
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for every SDK client: retries, and for the stand-in no TLS and no waits."""
        kw: dict[str, Any] = {"retry_total": RETRY_TOTAL, "retry_status": RETRY_TOTAL, **self.client_options}
        if self.local:
            pacer = pacer_for(self.subscription_id, "standin-token", self.pacing_clock or WallClock())
            kw.update(authentication_policy=SansIOHTTPPolicy(), polling_interval=0, retry_backoff_factor=0,
                      transport=PacedTransport(pacer, virtual=True, mounts={self.arm_url: self.http_adapter}
                                               if self.http_adapter is not None else None,
                                               on_wait=getattr(self.http_adapter, "waited", None)))
        else:
            kw.setdefault("transport", PacedTransport(pacer_for(self.subscription_id, "app", _WALL)))
        return kw


_WALL = WallClock()
