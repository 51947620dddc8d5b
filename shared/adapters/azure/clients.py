"""How the Azure clients are built: in Azure (DefaultAzureCredential, ARM, regional Monitor endpoints) or
against the local stand-ins (a static token, plain http, a virtual clock).

Retries are azure-core's own policy. ``RETRY_TOTAL`` retries make ten attempts per request, as the simulator's
fault model assumes; in Azure the policy sleeps the ``Retry-After`` ARM sends. Against the stand-in the
transport's ``sleep`` does nothing: the stand-in already moved its virtual clock by what it asked the client
to wait, so a test never sleeps in wall time.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import requests
import requests.adapters
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.pipeline.transport import RequestsTransport

RETRY_TOTAL = 9
"""Ten attempts per request in all (the simulator's ``MAX_ARM_ATTEMPTS``)."""


class StaticTokenCredential(TokenCredential):
    """A fixed bearer token for local stand-ins; never used against Azure."""

    def __init__(self, token: str = "standin-token") -> None:
        self._token = token

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)


class VirtualTimeTransport(RequestsTransport):  # type: ignore[misc]
    """A requests transport whose waits (Retry-After, LRO polling) cost no wall time: for the stand-in only."""

    def __init__(self) -> None:
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
        session.mount("http://", adapter)
        super().__init__(session=session, session_owner=True)

    def sleep(self, duration: float) -> None:
        return None


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
    logs_url: str = "https://api.loganalytics.io/v1"
    local: bool = False
    """True against the stand-in: plain http, a static token, no wall-clock waits."""
    client_options: dict[str, Any] = field(default_factory=dict)

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
                   logs_url=get("LOGS_URL", "https://api.loganalytics.io/v1"))

    @classmethod
    def for_standin(cls, url: str, *, subscription_id: str, location: str, fleet_resource_group: str,
                    shadow_resource_group: str) -> AzureSettings:
        return cls(subscription_id=subscription_id, fleet_resource_group=fleet_resource_group,
                   shadow_resource_group=shadow_resource_group, location=location,
                   shadow_subnet_id=f"/subscriptions/{subscription_id}/resourceGroups/{shadow_resource_group}/providers"
                                    "/Microsoft.Network/virtualNetworks/shadow-vnet/subnets/shadows",
                   arm_url=url, metrics_url=url, logs_url=f"{url}/v1", local=True)

    def credential(self) -> TokenCredential:
        if self.local:
            return StaticTokenCredential()
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for every SDK client: retries, and for the stand-in no TLS and no waits."""
        kw: dict[str, Any] = {"retry_total": RETRY_TOTAL, "retry_status": RETRY_TOTAL, **self.client_options}
        if self.local:
            kw.update(authentication_policy=SansIOHTTPPolicy(), polling_interval=0, retry_backoff_factor=0,
                      transport=VirtualTimeTransport())
        return kw
