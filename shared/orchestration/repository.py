"""A typed repository over the RolloutStore: one rollout's rows as models, every update optimistic.

Rows are laid out so that writers that run at the same time (the chunks of a fan-out) never share one:

    record          the rollout record, written by steps that run one after another
    vm/<vm id>      one row per production VM (each VM is in one chunk of a wave or of a rollback batch)
    shadow/<id>     one row per shadow; plan/<i> one per planned shadow
    shadow_chunk/<c>  when chunk c of apply_to_shadows finished (was a field of the record per chunk)
    wave/<w>, batch/<b>, standby/<vm id>, verdict/<stratum>, evidence/<stratum>, fleet_evidence/fleet
    sequence/<stratum>  the sequential bake's state per stratum (and sequence/fleet, every shadow pooled)
    memo/<key>      what a production check found, written ahead under its caller's idempotency key
    decision/<minute>|<step>|<scope>|<index>   deterministic: a re-run rewrites its own rows, two chunks
                    never take the same key, and the order is that of time, then lifecycle step, chunk, index.

Every change is a read-modify-write with the row's ETag (``RolloutStore.update``), redone on a conflict.

Rows read as models are kept per store by (rollout, kind, key) with the ETag they were read at: a row whose
version has not changed since is not validated again, and a read of a kind none of whose rows was written since
the last read (a store that tells: ``rows_since``) hands out the same models without looking at a row. Every
activity reads all VM rows, so without it a rollout validated (activities x VMs) rows: 10,000 VMs took minutes
of CPU in pydantic alone. The models handed out are shared, hence frozen (:class:`~.state.VmItem`): a change is
``model_copy(update=...)`` written back through an update, as every writer already does.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, TypeVar, cast

from pydantic import BaseModel

from ..domain.decisions import Decision
from ..domain.features import StratumEvidence
from ..domain.judge import Phase, StratumVerdict
from ..domain.model import ShadowPlan
from ..domain.sequential import StratumSequence
from ..ports import RECORD, RolloutStore, StoredRow
from .state import (
    CheckMemo,
    DecisionRow,
    Model,
    RolloutRecord,
    ShadowChunk,
    ShadowItem,
    Standby,
    VmItem,
    VmList,
)

M = TypeVar("M", bound=BaseModel)

_Parsed = dict[tuple[str, str, str], dict[str, tuple[str, BaseModel]]]
_PARSED: weakref.WeakKeyDictionary[RolloutStore, _Parsed] = weakref.WeakKeyDictionary()
"""Per store and (rollout, kind, model): key -> (ETag, the row validated at that ETag)."""
_Tables = dict[tuple[str, str, str], tuple[int, dict[str, BaseModel]]]
_TABLES: weakref.WeakKeyDictionary[RolloutStore, _Tables] = weakref.WeakKeyDictionary()
"""Per store and (rollout, kind, model): the last whole read, at the kind's generation (stores that tell it)."""
_PARSED_LOCK = threading.Lock()


class Kind(StrEnum):
    RECORD = RECORD
    VM = "vm"
    SHADOW = "shadow"
    PLAN = "plan"
    SHADOW_CHUNK = "shadow_chunk"
    WAVE = "wave"
    BATCH = "batch"
    STANDBY = "standby"
    VERDICT = "verdict"
    EVIDENCE = "evidence"
    FLEET_EVIDENCE = "fleet_evidence"
    SEQUENCE = "sequence"
    DECISION = "decision"
    MEMO = "memo"


class Step(StrEnum):
    """The activities in the order a rollout runs them: the tie-break of decisions made in the same minute."""

    START_ROLLOUT = "start_rollout"
    CLAIM_TARGETS = "claim_targets"
    CREATE_SHADOWS = "create_shadows"
    DRIVE_SHADOW_LOAD = "drive_shadow_load"
    APPLY_TO_SHADOWS = "apply_to_shadows"
    ANALYSE_SHADOWS = "analyse_shadows"
    SNAPSHOT_AHEAD = "snapshot_ahead"
    ADD_SHADOWS = "add_shadows"
    DECIDE = "decide"
    TEARDOWN_SHADOWS = "teardown_shadows"
    DISCARD_SNAPSHOTS = "discard_snapshots"
    RESOLVE_GATE = "resolve_gate"
    ABORT_ROLLOUT = "abort_rollout"
    PREPARE = "prepare"
    SNAPSHOT_WAVE = "snapshot_wave"
    APPLY_WAVE = "apply_wave"
    WATCH_SHADOWS = "watch_shadows"
    CHECK_PRODUCTION = "check_production"
    PRODUCTION_DONE = "production_done"
    HALT = "halt"
    RESERVE_CAPACITY = "reserve_capacity"
    RESTORE_VMS = "restore_vms"
    VERIFY_RECOVERED = "verify_recovered"
    RELEASE_CAPACITY = "release_capacity"
    SETTLE_CAPACITY = "settle_capacity"
    RELEASE_LEASES = "release_leases"
    FINISH = "finish"

    @property
    def rank(self) -> int:
        return list(Step).index(self)


def decision_key(minute: float, step: Step, scope: str, index: int) -> str:
    """Sorts as text in time order; unique per (step, scope, index) within a minute."""
    return f"{max(minute, 0.0):010.1f}|{step.rank:02d}|{step.value}|{scope}|{index:04d}"


def _verdict(d: Mapping[str, Any]) -> StratumVerdict:
    return StratumVerdict(d["stratum_key"], d["label"], Phase(d["phase"]), d["score"], d["reason"],
                          d["shadows_observed"])


class RolloutRepository:
    """One rollout's state in the store, as models."""

    def __init__(self, store: RolloutStore, rollout_id: str) -> None:
        self.store = store
        self.id = rollout_id

    # ------------------------------------------------------------------ generic
    def _all(self, kind: Kind, model: type[M]) -> dict[str, M]:
        return {k: model.model_validate(v) for k, v in self.store.get_items(self.id, kind).items()}

    def _parsed(self, kind: Kind, model: type[M]) -> dict[str, tuple[str, BaseModel]]:
        with _PARSED_LOCK:
            return _PARSED.setdefault(self.store, {}).setdefault((self.id, kind.value, model.__qualname__), {})

    def _all_shared(self, kind: Kind, model: type[M]) -> dict[str, M]:
        """Like :meth:`_all` (one store read), reusing the models of rows unchanged since they were last
        validated (same ETag). Only for frozen models: the instances are shared between readers."""
        table = (self.id, kind.value, model.__qualname__)
        with _PARSED_LOCK:
            tables = _TABLES.setdefault(self.store, {})
        last = tables.get(table)
        generation, rows = self.store.rows_since(self.id, kind, last[0] if last is not None else None)
        if rows is None and last is not None:  # nothing written since the last read: the same models
            return cast(dict[str, M], dict(last[1]))
        if rows is None:
            raise RuntimeError(f"the store answered 'unchanged' to a first read of {kind.value} rows")
        cache = self._parsed(kind, model)
        out: dict[str, Any] = {key: _validated(cache, key, row, model) for key, row in rows.items()}
        if generation is not None:
            tables[table] = (generation, dict(out))
        return out

    def _update(self, kind: Kind, keys: Sequence[str], change: Callable[[str, M | None], M | None],
                model: type[M]) -> None:
        """Frozen models go through the shared cache both ways: a row unchanged since it was validated is not
        validated again, and the model written is kept under the version the store gave it."""
        cache = self._parsed(kind, model) if model.model_config.get("frozen") else None
        made: dict[str, M] = {}

        def apply(key: str, row: StoredRow | None) -> dict[str, Any] | None:
            current = None
            if row is not None:
                current = _validated(cache, key, row, model) if cache is not None else model.model_validate(row.value)
            new = change(key, current)
            if new is None:
                return None
            made[key] = new
            return _dump(new)

        written = self.store.update_rows(self.id, kind, keys, apply)
        if cache is not None:
            for key, etag in written.items():
                if etag and key in made:
                    cache[key] = (etag, made[key])

    def _put(self, kind: Kind, rows: Mapping[str, BaseModel | Mapping[str, Any]]) -> None:
        """Write whole rows (created, or replaced at the version just read)."""
        if rows:
            self.store.update(self.id, kind, list(rows), lambda k, _: _dump(rows[k]))

    # ------------------------------------------------------------------ the record
    def record(self) -> RolloutRecord | None:
        raw = self.store.get_rollout(self.id)
        return RolloutRecord.model_validate(raw) if raw is not None else None

    def put_record(self, record: RolloutRecord) -> None:
        self._put(Kind.RECORD, {RECORD: record})

    def update_record(self, change: Callable[[RolloutRecord], None]) -> RolloutRecord:
        """Change the record in place on a fresh copy (again after a conflict); the record as written."""
        written: list[RolloutRecord] = []

        def apply(_: str, current: RolloutRecord | None) -> RolloutRecord:
            if current is None:
                raise KeyError(f"rollout {self.id} is not in the store")
            change(current)
            written.append(current)
            return current

        self._update(Kind.RECORD, [RECORD], apply, RolloutRecord)
        return written[-1]

    # ------------------------------------------------------------------ production VMs
    def vms(self) -> dict[str, VmItem]:
        """Every production VM's row (shared, frozen models: see the module's docstring)."""
        return self._all_shared(Kind.VM, VmItem)

    def put_vms(self, items: Mapping[str, VmItem]) -> None:
        self._put(Kind.VM, items)

    def update_vms(self, keys: Iterable[str], change: Callable[[str, VmItem], VmItem | None]) -> None:
        """Change each VM's row from its fresh version; None leaves it as it is."""
        def apply(key: str, current: VmItem | None) -> VmItem | None:
            if current is None:
                raise KeyError(f"VM {key} is not part of rollout {self.id}")
            return change(key, current)

        self._update(Kind.VM, list(keys), apply, VmItem)

    # ------------------------------------------------------------------ shadows
    def plans(self) -> list[tuple[int, ShadowPlan]]:
        items = self.store.get_items(self.id, Kind.PLAN)
        return [(int(k), ShadowPlan.from_dict(items[k])) for k in sorted(items, key=int)]

    def put_plans(self, plans: Sequence[ShadowPlan]) -> None:
        self._put(Kind.PLAN, {str(i): p.to_dict() for i, p in enumerate(plans)})

    def shadows(self) -> dict[str, ShadowItem]:
        return self._all(Kind.SHADOW, ShadowItem)

    def put_shadows(self, items: Mapping[str, ShadowItem]) -> None:
        self._put(Kind.SHADOW, items)

    def update_shadows(self, keys: Iterable[str], change: Callable[[str, ShadowItem], ShadowItem | None]) -> None:
        def apply(key: str, current: ShadowItem | None) -> ShadowItem | None:
            if current is None:
                raise KeyError(f"shadow {key} is not part of rollout {self.id}")
            return change(key, current)

        self._update(Kind.SHADOW, list(keys), apply, ShadowItem)

    def shadow_chunks(self) -> dict[int, ShadowChunk]:
        return {int(k): v for k, v in self._all(Kind.SHADOW_CHUNK, ShadowChunk).items()}

    def put_shadow_chunk(self, chunk: int, row: ShadowChunk) -> None:
        self._put(Kind.SHADOW_CHUNK, {str(chunk): row})

    # ------------------------------------------------------------------ evidence and verdicts
    def put_verdicts(self, verdicts: Mapping[str, StratumVerdict]) -> None:
        self._put(Kind.VERDICT, {k: v.to_dict() for k, v in verdicts.items()})

    def verdicts(self) -> dict[str, StratumVerdict]:
        return {k: _verdict(v) for k, v in self.store.get_items(self.id, Kind.VERDICT).items()}

    def put_evidence(self, evidence: Mapping[str, StratumEvidence], pooled: StratumEvidence | None) -> None:
        self._put(Kind.EVIDENCE, {k: e.to_dict() for k, e in evidence.items()})
        if pooled is not None:
            self._put(Kind.FLEET_EVIDENCE, {"fleet": pooled.to_dict()})

    def evidence(self) -> tuple[dict[str, StratumEvidence], StratumEvidence | None]:
        evidence = {k: StratumEvidence.from_dict(v) for k, v in self.store.get_items(self.id, Kind.EVIDENCE).items()}
        pooled = self.store.get_items(self.id, Kind.FLEET_EVIDENCE).get("fleet")
        return evidence, StratumEvidence.from_dict(pooled) if pooled else None

    def put_sequences(self, states: Mapping[str, StratumSequence]) -> None:
        """The sequential bake's state per stratum (and ``fleet``, the shadows pooled): small, one row each."""
        self._put(Kind.SEQUENCE, dict(states))

    def sequences(self) -> dict[str, StratumSequence]:
        return self._all(Kind.SEQUENCE, StratumSequence)

    # ------------------------------------------------------------------ waves, batches, standby
    def put_waves(self, waves: Sequence[Sequence[str]]) -> None:
        self._put(Kind.WAVE, {str(i): VmList(vm_ids=list(w)) for i, w in enumerate(waves)})

    def wave(self, wave: int) -> list[str]:
        return VmList.model_validate(self.store.get_items(self.id, Kind.WAVE)[str(wave)]).vm_ids

    def put_batch(self, batch: str, vm_ids: Sequence[str]) -> None:
        self._put(Kind.BATCH, {batch: VmList(vm_ids=list(vm_ids))})

    def batch(self, batch: str) -> list[str]:
        return VmList.model_validate(self.store.get_items(self.id, Kind.BATCH)[batch]).vm_ids

    def put_standby(self, vm_ids: Iterable[str]) -> None:
        self._put(Kind.STANDBY, {v: Standby() for v in vm_ids})

    # ------------------------------------------------------------------ written ahead (idempotency keys)
    def memo(self, key: str) -> CheckMemo | None:
        """What a check found when it ran before under ``key``, if it did."""
        got = self.store.get_items(self.id, Kind.MEMO).get(key)
        return CheckMemo.model_validate(got) if got is not None else None

    def put_memo(self, key: str, memo: CheckMemo) -> None:
        self._put(Kind.MEMO, {key: memo})

    # ------------------------------------------------------------------ decisions
    def add_decisions(self, minute: float, step: Step, scope: str, first: int,
                      decisions: Sequence[Decision]) -> None:
        """Rows keyed by (minute, step, scope, index): a retry of the same call rewrites its own rows."""
        self._put(Kind.DECISION, {
            decision_key(minute, step, scope, first + i): DecisionRow(
                minute=minute, kind=d.kind, reason=d.reason, subject=d.subject, data=dict(d.data))
            for i, d in enumerate(decisions)})

    def decisions(self) -> list[DecisionRow]:
        return [DecisionRow.model_validate(d) for d in self.store.decisions(self.id)]


def _validated(cache: dict[str, tuple[str, BaseModel]], key: str, row: StoredRow, model: type[M]) -> M:
    """The row's model: the one kept for its version, else validated now and kept (a store that gave no version:
    nothing to tell a changed row by, so never kept)."""
    hit = cache.get(key)
    if hit is None or hit[0] != row.etag or not row.etag:
        hit = (row.etag, model.model_validate(row.value))
        if row.etag:
            cache[key] = hit
    return cast(M, hit[1])


def _dump(value: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(value, Model):
        return value.json_dict()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return dict(value)
