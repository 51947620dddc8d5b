"""What makes each activity safe to run twice (Durable Functions runs activities at least once).

Three rules, kept apart from the handlers so that each handler applies them in one line:

- *absolute targets*: capacity is set to the scale set's capacity before the rollout plus the instances the
  rollout means to hold, never to ``current ± n`` (a second run would add or remove twice);
- *written ahead*: an activity whose answer depends on the moment it first ran (a health check that queues
  rollbacks) stores what it found under the caller's idempotency key before it acts on it
  (``RolloutRepository.memo``), so that a run after a death part-way does the same writes and gives the same
  answer;
- *looking before acting* is done where the resource is: the adapters find a shadow by its deterministic name
  (:mod:`shared.domain.naming`), a VM already on the change, or a disk already restored from its snapshot.
"""

from __future__ import annotations

from .state import RolloutRecord


def capacity_target(record: RolloutRecord, target: str, extra: int) -> int:
    """The absolute capacity of ``target`` holding ``extra`` borrowed instances, from the capacity recorded when
    the rollout started."""
    return int(record.original_capacity[target]) + max(0, int(extra))
