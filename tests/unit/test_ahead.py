"""Snapshots taken during the bake: which VMs (the pure choice) and when they are deleted."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.ahead import discard_snapshots, snapshots_ahead
from shared.domain.kinds import DecisionKind
from shared.domain.sampling import split_waves

BY_STRATUM = {"a": [f"a{i:02d}" for i in range(40)], "b": [f"b{i:02d}" for i in range(20)], "c": ["c00"]}
SHARES = [0.1, 0.05, 0.02]


def test_the_first_wave_at_the_largest_share_and_the_at_risk_vms_are_chosen_with_the_numbers() -> None:
    got = snapshots_ahead(BY_STRATUM, ["b03", "a07"], [], SHARES, "r1", 4.0)
    first = split_waves(BY_STRATUM, (0.1, 0.9), "r1")[0]
    assert set(got.vm_ids) == set(first) | {"b03", "a07"}
    assert len(first) == 4 + 2 + 1  # 10% of each stratum, rounded up: every stratum has a VM in it
    d = got.decision
    assert d is not None and d.kind is DecisionKind.SNAPSHOT_AHEAD
    assert d.data["vms"] == len(got.vm_ids) and d.data["at_risk"] == 2
    assert d.data["first_wave"] == len(got.vm_ids) - 2 and d.data["share"] == 0.1
    assert "bake minute 4" in d.reason and f"{len(got.vm_ids)} production VMs" in d.reason


def test_vms_chosen_before_or_not_proceeding_are_not_chosen_again() -> None:
    first = snapshots_ahead(BY_STRATUM, [], [], SHARES, "r1", 2.0)
    again = snapshots_ahead(BY_STRATUM, ["zz-skipped"], first.vm_ids, SHARES, "r1", 4.0)
    assert again.vm_ids == () and again.decision is None
    later = snapshots_ahead(BY_STRATUM, ["a30"], first.vm_ids, SHARES, "r1", 6.0)
    assert later.vm_ids == (("a30",) if "a30" not in first.vm_ids else ())
    assert later.decision is None or later.decision.data["chosen_before"] == len(first.vm_ids)


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 60), min_size=1, max_size=6), shares=st.lists(st.floats(0.01, 0.6),
                                                                                    min_size=1, max_size=4),
       salt=st.text(min_size=1, max_size=8))
def test_the_chosen_vms_hold_the_first_wave_whichever_share_the_decision_picks(
        sizes: list[int], shares: list[float], salt: str) -> None:
    by_stratum = {f"s{k}": [f"s{k}-{i}" for i in range(n)] for k, n in enumerate(sizes)}
    chosen = set(snapshots_ahead(by_stratum, [], [], shares, salt, 2.0).vm_ids)
    for share in shares:
        assert set(split_waves(by_stratum, (share, 1.0 - share), salt)[0]) <= chosen


def test_snapshots_are_deleted_only_when_no_vm_was_changed() -> None:
    kept = discard_snapshots(taken=12, changed=3)
    assert not kept.delete and kept.decision is None
    none = discard_snapshots(taken=0, changed=0)
    assert not none.delete and none.decision is None
    gone = discard_snapshots(taken=12, changed=0)
    assert gone.delete and gone.decision is not None and gone.decision.kind is DecisionKind.DISCARD_SNAPSHOTS
    assert gone.decision.data == {"snapshots": 12} and gone.decision.reason.startswith("12 pre-change snapshots")
