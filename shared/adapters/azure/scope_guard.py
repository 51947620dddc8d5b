"""Scope at the adapter boundary: each mutating compute call checks its targets, and each subscription has its
own client.

The intake refuses out-of-scope requests, but an activity (or a bug, or a caller that is not the intake) could
still hand the adapter a resource elsewhere. Before this guard, a target in another subscription was acted on in
the same-named resource group of the app's own subscription (the client knew one subscription only). Now:

- :meth:`ScopeGuard.client_for` returns the client of the targets' own subscription (one per subscription,
  made on first use), so an id is never re-read against another subscription;
- :meth:`ScopeGuard.check` refuses (:class:`OutOfScope`, logged as a warning, nothing sent to ARM) any target
  outside the scope before a mutating call.

The scope is the intake configuration's (``SHADOW_ROLLOUT_INTAKE_CONFIG[_JSON]``), the one an operator wrote
down. Where no intake configuration is set, the scope is the adapter's own subscription, and a warning says so
(a visible, recorded choice; never "anywhere").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from ...domain.errors import ConfigurationError, OutOfScope
from ...domain.resource_id import ResourceId, parse_group_id
from ...domain.scope import Scope

log = logging.getLogger("shadow_rollout.scope")
C = TypeVar("C")


def _subscription_and_group(resource_id: str) -> ResourceId:
    """Subscription and resource group of any compute id (a scale set, a VM, an instance, a disk, a snapshot)."""
    parts = resource_id.strip("/").split("/")
    low = [p.casefold() for p in parts]
    if len(parts) < 4 or low[0] != "subscriptions" or low[2] != "resourcegroups":
        raise OutOfScope(f"{resource_id[:200]!r} is not an Azure resource id; nothing was done")
    return ResourceId(parts[1], parts[3])


def default_scope(home_subscription: str) -> Scope:
    """The operator's scope, or (no intake configuration) the adapter's own subscription, with a warning."""
    from ...intake.config import load_intake_config

    try:
        scope = load_intake_config().scope
    except ConfigurationError as exc:
        log.warning("no intake scope (%s): compute calls are limited to subscription %s", exc, home_subscription)
        return Scope(subscriptions=[home_subscription])
    return scope if scope is not None else Scope(subscriptions=[home_subscription])


class ScopeGuard(Generic[C]):
    """One client per subscription, and the scope every mutating call is checked against."""

    def __init__(self, make_client: Callable[[str], C], home_subscription: str, scope: Scope | None = None,
                 home_client: C | None = None) -> None:
        self._make = make_client
        self.home = home_subscription
        self._scope = scope
        self._clients: dict[str, C] = {}
        if home_client is not None:
            self._clients[home_subscription.casefold()] = home_client

    @property
    def scope(self) -> Scope:
        if self._scope is None:
            self._scope = default_scope(self.home)
        return self._scope

    def check(self, resource_ids: Iterable[str], operation: str) -> None:
        """Refuse the whole call when any target lies outside the scope (nothing is sent to ARM)."""
        subs = {s.casefold() for s in self.scope.subscriptions}
        groups = {parse_group_id(r).group_key for r in self.scope.resource_groups}
        outside = []
        for rid in resource_ids:
            where = _subscription_and_group(rid)
            if where.subscription.casefold() not in subs and where.group_key not in groups:
                outside.append(rid)
        if outside:
            msg = (f"{operation} refused: {len(outside)} target(s) outside the configured scope, e.g. "
                   f"{outside[0][:300]}; nothing was done")
            log.warning("%s", msg)
            raise OutOfScope(msg)

    def client_for(self, resource_ids: Iterable[str], operation: str | None = None) -> C:
        """The client of the targets' subscription (all must share one); checked against the scope when
        ``operation`` names a mutating call."""
        ids = list(resource_ids)
        if operation is not None:
            self.check(ids, operation)
        subs = {_subscription_and_group(r).subscription.casefold() for r in ids} or {self.home.casefold()}
        if len(subs) > 1:
            raise OutOfScope(f"{operation or 'call'} spans subscriptions {sorted(subs)}; each subscription has "
                             "its own client, so call once per subscription; nothing was done")
        sub = subs.pop()
        if sub not in self._clients:
            self._clients[sub] = self._make(sub)
        return self._clients[sub]

