"""What makes each activity safe to run twice (Durable Functions runs activities at least once).

Three rules, kept apart from the handlers so that each handler applies them in one line:

- *absolute targets*: capacity is set to the scale set's capacity before the rollout plus the instances the
  rollout means to hold, never to ``current ± n`` (a second run would add or remove twice);
- *written ahead*: an activity whose answer depends on the moment it first ran (a health check that queues
  rollbacks) stores what it found under the caller's idempotency key before it acts on it, so that a run after a
  death part-way does the same writes and gives the same answer;
- *looking before acting* is done where the resource is: the adapters find a shadow by its deterministic name
  (:mod:`shared.domain.naming`), a VM already on the change, or a disk already restored from its snapshot.
"""

from __future__ import annotations

from typing import Any

from ..ports import RolloutStore

MEMO = "memo"


def capacity_target(record: dict[str, Any], target: str, extra: int) -> int:
    """The absolute capacity of ``target`` holding ``extra`` borrowed instances, from the capacity recorded when
    the rollout started."""
    return int(record["original_capacity"][target]) + max(0, int(extra))


def remembered(store: RolloutStore, rollout_id: str, key: str | None) -> dict[str, Any] | None:
    """The answer an activity gave under ``key`` when it ran before, if it did (and a key was given)."""
    if not key:
        return None
    got = store.get_items(rollout_id, MEMO).get(key)
    return dict(got["memo"]) if got is not None else None


def remember(store: RolloutStore, rollout_id: str, key: str | None, memo: dict[str, Any]) -> dict[str, Any]:
    if key:
        store.put_items(rollout_id, MEMO, {key: {"memo": memo}})
    return memo
