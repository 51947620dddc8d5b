"""Concurrent writers of one rollout, on real threads, against Azurite and the in-memory store.

In Azure the chunks of a fan-out run at the same time (``maxConcurrentActivityFunctions``) and all write the
same rollout. The store used to read a row, merge, and write it back with no version (Table ``upsert``
REPLACE, no ETag), and to number decision rows from ``len(existing)``: two writers that read before either
wrote both wrote, and the first one's update was gone. ``test_the_old_pattern_loses_updates`` shows that loss
on the same stores; the other tests show that with ETags (If-Match, retried on 412) every update survives.
Threads meet at a barrier right after their first read, so every writer really starts from the same version.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping

import pytest
from azure.data.tables import TableServiceClient

from shared.adapters.azure.store import TableRolloutStore
from shared.adapters.memory_store import InMemoryRolloutStore
from shared.domain.decisions import Decision
from shared.domain.errors import StaleWrite
from shared.domain.kinds import DecisionKind
from shared.orchestration.repository import RolloutRepository, Step
from shared.ports import RECORD, RolloutStore, RowWrite, StoredRow

WRITERS = 8


@pytest.fixture(params=["memory", "azurite"])
def store(request: pytest.FixtureRequest) -> Iterator[RolloutStore]:
    if request.param == "memory":
        yield InMemoryRolloutStore()
        return
    conn: str = request.getfixturevalue("azurite_tables")
    name = "t" + uuid.uuid4().hex[:20]
    yield TableRolloutStore.from_connection_string(conn, name)
    TableServiceClient.from_connection_string(conn).delete_table(name)


class MeetAfterFirstRead(RolloutStore):
    """The store, with each thread's first read held until every writer has read: the worst interleaving."""

    def __init__(self, inner: RolloutStore, writers: int) -> None:
        self.inner = inner
        self.barrier = threading.Barrier(writers, timeout=30)
        self.local = threading.local()

    def rows(self, rollout_id: str, kind: str) -> dict[str, StoredRow]:
        out = self.inner.rows(rollout_id, kind)
        if not getattr(self.local, "met", False):
            self.local.met = True
            self.barrier.wait()
        return out

    def write(self, rollout_id: str, kind: str, rows: Mapping[str, RowWrite]) -> dict[str, str]:
        return self.inner.write(rollout_id, kind, rows)

    def rollout_ids(self) -> list[str]:
        return self.inner.rollout_ids()


def run_writers(work: Callable[[int], None], writers: int = WRITERS) -> None:
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # surfaced below, with the thread's own error
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


def test_the_old_pattern_loses_updates(store: RolloutStore) -> None:
    """Read, merge, replace without the version read (last writer wins): every writer but one is lost."""
    store.put_rollout("r1", {"state": "running"})
    barrier = threading.Barrier(WRITERS, timeout=30)

    def old_writer(i: int) -> None:
        current = store.get_rollout("r1") or {}
        barrier.wait()
        with lock:  # the blind replace itself, one at a time: as Table storage applies them
            now = store.rows("r1", RECORD)[RECORD].etag  # no If-Match: whatever is there is overwritten
            store.write("r1", RECORD, {RECORD: RowWrite({**current, f"chunk_{i}": True}, now)})

    lock = threading.Lock()
    run_writers(old_writer)
    record = store.get_rollout("r1") or {}
    assert sum(1 for k in record if k.startswith("chunk_")) == 1


def test_concurrent_updates_of_the_record_all_survive(store: RolloutStore) -> None:
    store.put_rollout("r1", {"state": "running"})
    racing = MeetAfterFirstRead(store, WRITERS)
    run_writers(lambda i: racing.put_rollout("r1", {f"chunk_{i}": i}))
    record = store.get_rollout("r1") or {}
    assert {k: v for k, v in record.items() if k.startswith("chunk_")} == {f"chunk_{i}": i for i in range(WRITERS)}


def test_concurrent_appends_to_the_same_vm_rows_all_survive(store: RolloutStore) -> None:
    vms = [f"vm{j}" for j in range(5)]
    store.put_items("r1", "vm", {v: {"actions": []} for v in vms})
    racing = MeetAfterFirstRead(store, WRITERS)

    def append(i: int) -> None:
        racing.update("r1", "vm", vms, lambda _, cur: {**(cur or {}), "actions": [*(cur or {})["actions"], i]})

    run_writers(append)
    for v, item in store.get_items("r1", "vm").items():
        assert sorted(item["actions"]) == list(range(WRITERS)), v


def test_decisions_of_parallel_chunks_never_share_a_row(store: RolloutStore) -> None:
    """The old numbering (``len(existing)``) gave every chunk the same first row; keys by chunk cannot collide."""
    racing = MeetAfterFirstRead(store, WRITERS)
    repo = RolloutRepository(racing, "r1")
    run_writers(lambda i: repo.add_decisions(3.0, Step.CREATE_SHADOWS, f"c{i:02d}", 0, [
        Decision(DecisionKind.SHADOW_UNAVAILABLE, f"chunk {i} a"), Decision(DecisionKind.SHADOW_UNAVAILABLE,
                                                                            f"chunk {i} b")]))
    reasons = [d.reason for d in RolloutRepository(store, "r1").decisions()]
    assert reasons == [f"chunk {i} {x}" for i in range(WRITERS) for x in "ab"]


def test_a_write_naming_a_stale_version_is_refused_and_changes_nothing(store: RolloutStore) -> None:
    store.put_items("r1", "vm", {"a": {"n": 1}, "b": {"n": 1}})
    rows = store.rows("r1", "vm")
    store.write("r1", "vm", {"a": RowWrite({"n": 2}, rows["a"].etag)})
    with pytest.raises(StaleWrite):  # "a" changed since ``rows`` was read; "b" did not
        store.write("r1", "vm", {"b": RowWrite({"n": 3}, rows["b"].etag), "a": RowWrite({"n": 3}, rows["a"].etag)})
    assert store.get_items("r1", "vm") == {"a": {"n": 2}, "b": {"n": 1}}
    with pytest.raises(StaleWrite):  # a row created meanwhile is not overwritten by a create
        store.write("r1", "vm", {"a": RowWrite({"n": 9}, None)})
