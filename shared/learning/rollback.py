"""Move the registry's ``promoted`` pointer back to an earlier version, by hand, as safely as the trainer moves
it forward: the same ETag compare-and-swap (a trainer promoting meanwhile wins, and the rollback says so), only to
a version the registry holds, only to one whose feature schema this code computes (a rollout app would refuse
anything else and fall back to the packaged model), and recorded: who, why, from which version, in the pointer
itself and as a report under ``runs/``. No training dependency: this runs wherever the CLI does.
"""

from __future__ import annotations

import json
from datetime import datetime

from ..adapters.onnx_model import check_schema
from ..domain.errors import InvalidInput, ModelError, NotFound
from ..domain.registry import FEATURES_FILE, PromotedPointer, Promotion, check_version
from ..ports import ModelRegistry


def rollback(registry: ModelRegistry, to: str, *, by: str, reason: str, now: datetime) -> PromotedPointer:
    """Promote ``to`` again in place of what is promoted; raises InvalidInput (unknown version, nothing to roll
    back from, already in use, no reason), ModelError (schema mismatch) or PromotionConflict (the pointer moved)."""
    try:
        check_version(to)
    except ModelError as exc:
        raise InvalidInput(str(exc)) from exc
    if not reason.strip():
        raise InvalidInput("a rollback needs a reason (--reason): it is recorded with the pointer")
    pointer = registry.promoted()
    if pointer is None:
        raise InvalidInput(f"nothing is promoted in {registry.location}: there is nothing to roll back from")
    if pointer.version == to:
        raise InvalidInput(f"model version {to} is already the promoted one")
    known = registry.versions()
    if to not in known:
        listed = ", ".join(known[-5:]) or "none"
        raise InvalidInput(f"model version {to!r} is not in the registry {registry.location} (newest versions: "
                           f"{listed})")
    try:
        schema = json.loads(registry.get_file(to, FEATURES_FILE))
    except (NotFound, ValueError) as exc:
        raise ModelError(f"model version {to} has no readable feature schema: {exc}") from exc
    check_schema(schema, f"registry version {to}")  # ModelError: a rollout app would refuse it
    promotion = Promotion(version=to, promoted_at=now, reason=f"rollback by {by}: {reason.strip()}",
                          previous=pointer.version, by=by, rollback=True)
    moved = registry.promote(promotion, expected_etag=pointer.etag)  # If-Match: the ETag read above
    registry.put_run(f"{now:%Y%m%dT%H%M%S%fZ}-rollback.json", json.dumps({
        "at": now.isoformat(), "rollback": True, "by": by, "reason": reason.strip(), "from": pointer.version,
        "to": to}, indent=2).encode())
    return moved
