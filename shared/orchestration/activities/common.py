"""What every activity handler shares: the rollout it works on, its decisions, outcome events, small helpers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from ...domain.decisions import Decision
from ...domain.kinds import DecisionKind
from ...domain.policy import RolloutPolicy
from ...domain.request import instance_id_for
from ...services import Services
from ..repository import RolloutRepository, Step
from ..state import RolloutRecord, VmItem

SOURCE_LOAD_MINUTES = 30
PRE_CHANGE_MINUTES = 15
DEMAND_MINUTES = 10
SERVING_MINUTES = 3
PEER_SAMPLE = 200
MIN_PEERS = 5
DEFAULT_UTILISATION = 0.4


class Rollout:
    """One activity's view of its rollout: the record as loaded, the repository, and its decision rows.

    ``step`` and ``scope`` (the chunk, wave or batch it handles) make the keys of the decisions it records,
    so that a re-run of the same call rewrites its own rows and parallel chunks never share one.
    """

    def __init__(self, svc: Services, rollout_id: str, step: Step, scope: str = "") -> None:
        self.svc = svc
        self.id = rollout_id
        self.repo = RolloutRepository(svc.store, rollout_id)
        record = self.repo.record()
        if record is None:
            raise KeyError(f"rollout {rollout_id} is not in the store")
        self.record: RolloutRecord = record
        self.step = step
        self.scope = scope
        self._decided = 0

    @property
    def policy(self) -> RolloutPolicy:
        return self.record.policy

    @property
    def now(self) -> datetime:
        return self.svc.now()

    def minute(self, t: datetime | None = None) -> float:
        return round(((t or self.now) - self.record.started_at) / timedelta(minutes=1), 1)

    def decide(self, decisions: Iterable[Decision], at: datetime | None = None) -> None:
        """Record decisions made now, or at ``at``: when the call first made them (a re-run rewrites its rows)."""
        batch = list(decisions)
        if not batch:
            return
        self.repo.add_decisions(self.minute(at), self.step, self.scope, self._decided, batch)
        self._decided += len(batch)

    def update(self, **fields: Any) -> None:
        """Set fields of the record (validated), on its fresh version."""
        def change(rec: RolloutRecord) -> None:
            for name, value in fields.items():
                setattr(rec, name, value)

        self.record = self.repo.update_record(change)

    def vms(self) -> dict[str, VmItem]:
        return self.repo.vms()


def publish_outcome(r: Rollout, kind: str, reason: str, seq: str = "", **summary: Any) -> None:
    """Publish one outcome event; its id is stable across retries so that consumers can deduplicate.

    A failure to publish is recorded, not raised: the rollout's own state must not depend on the topic.
    """
    req = r.record.request
    event = {"event_id": f"{r.id}:{kind}{':' + seq if seq else ''}", "type": f"rollout.{kind}",
             "rollout_id": r.id, "instance_id": instance_id_for(r.id), "state": r.record.state.value,
             "reason": reason, "time": r.now.isoformat(), "requester": req.requester, "source": req.source,
             "origin": req.origin.model_dump(), "targets": list(req.targets),
             "change_id": req.change.change_id, "summary": summary}
    try:
        r.svc.outcomes.publish(event)
    except Exception as exc:  # any transport error: recorded with its type
        r.decide([Decision(DecisionKind.OUTCOME_NOT_PUBLISHED,
                           f"{event['type']} not published: {type(exc).__name__}: {exc}")])


def short(resource_id: str) -> str:
    """A VM's name as an operator knows it: ``web_3`` (Flexible) or ``api/7`` (Uniform instance)."""
    parts = resource_id.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-2] == "virtualMachines" and parts[-4] == "virtualMachineScaleSets":
        return f"{parts[-3]}/{parts[-1]}"
    return parts[-1]


def nanmean_rows(a: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        ok = ~np.isnan(a)
        total = np.where(ok, a, 0.0).sum(axis=1)
        count = ok.sum(axis=1)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
