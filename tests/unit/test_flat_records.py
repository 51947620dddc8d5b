"""The domain's flat records serialise as ``dataclasses.asdict`` would, without its deep copy."""

from __future__ import annotations

import dataclasses
import typing
from enum import Enum
from typing import Any

import pytest

from shared.domain.model import (
    ApplyResult,
    ApplyStatus,
    RestoreResult,
    ShadowInfo,
    ShadowPlan,
    ShadowState,
    SnapshotInfo,
    VmInfo,
)

FLAT = (VmInfo, ApplyResult, ShadowPlan, ShadowInfo, SnapshotInfo, RestoreResult)


def _expected(value: Any) -> dict[str, Any]:
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in dataclasses.asdict(value).items()}


@pytest.mark.parametrize("cls", FLAT, ids=lambda c: c.__name__)
def test_every_field_is_flat_so_a_shallow_copy_is_a_whole_one(cls: type) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        args = typing.get_args(hints[f.name]) or (hints[f.name],)
        assert all(a in (str, int, float, bool, type(None)) or (isinstance(a, type) and issubclass(a, Enum))
                   for a in args), f"{cls.__name__}.{f.name} is {hints[f.name]}: to_dict would share it"


def test_to_dict_is_asdict_with_enums_as_their_values() -> None:
    samples: list[Any] = [
        VmInfo("vm-1", "web", "Standard_D2s_v5", "ubuntu-22.04", "1", "Uniform", "disk-1"),
        ApplyResult("vm-1", ApplyStatus.FAILED, 3, 12.5, "exit 3"),
        ShadowInfo("sh-1", "vm-1", "web|D2|img|1", "Standard_D2s_v5", "1", True, ShadowState.RUNNING, "ok"),
        SnapshotInfo("vm-1", "snap-1", "disk-1"),
        RestoreResult("vm-1", True, 2, "restored"),
    ]
    for value in samples:
        got = value.to_dict()
        assert got == _expected(value)
        assert list(got) == [f.name for f in dataclasses.fields(value)]
        got[next(iter(got))] = "changed"  # the dict is the caller's own
        assert value.to_dict() == _expected(value)
