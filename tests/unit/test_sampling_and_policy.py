from __future__ import annotations

import pytest

from shared.domain.errors import PolicyError
from shared.domain.model import ShadowPlan, VmInfo
from shared.domain.policy import RolloutPolicy, parse_policy
from shared.domain.sampling import group_by_stratum, plan_shadow_sample


def fleet() -> list[VmInfo]:
    vms = [VmInfo(f"big{i}", "web", "Standard_D4s_v5", "u22", str(i % 3 + 1)) for i in range(300)]
    vms += [VmInfo("rare0", "web", "Standard_D2s_v5", "u20", "2")]
    return vms


def treated(policy: RolloutPolicy) -> list[ShadowPlan]:
    return [p for p in plan_shadow_sample(fleet(), policy, salt="r").plans if p.role == "treated"]


def test_every_stratum_gets_a_shadow_even_a_rare_one() -> None:
    plans = treated(RolloutPolicy())
    covered = {p.stratum_key for p in plans}
    assert covered == {s.key for s in group_by_stratum(fleet())}
    assert [p.source_vm_id for p in plans if p.stratum_key.startswith("web|Standard_D2s_v5")] == ["rare0"]


def test_each_scale_set_sku_image_group_gets_an_untouched_twin_from_another_source() -> None:
    sample = plan_shadow_sample(fleet(), RolloutPolicy(control_shadows_per_group=1), salt="r")
    controls = [p for p in sample.plans if p.role == "control"]
    assert sorted(p.sku for p in controls) == ["Standard_D2s_v5", "Standard_D4s_v5"]
    treated_sources = {p.source_vm_id for p in sample.plans if p.role == "treated"}
    big = next(p for p in controls if p.sku == "Standard_D4s_v5")
    assert big.source_vm_id not in treated_sources
    assert "2 untouched control twins" in sample.reason
    assert not [p for p in plan_shadow_sample(fleet(), RolloutPolicy(control_shadows_per_group=0),
                                              salt="r").plans if p.role == "control"]


def test_large_strata_get_shadows_in_proportion() -> None:
    per: dict[str, int] = {}
    for p in treated(RolloutPolicy(shadow_fraction=0.1, min_shadows_per_stratum=2)):
        per[p.stratum_key] = per.get(p.stratum_key, 0) + 1
    assert sorted(per.values()) == [1, 10, 10, 10]


def test_cap_keeps_one_shadow_per_stratum() -> None:
    sample = plan_shadow_sample(fleet(), RolloutPolicy(shadow_fraction=0.5, max_shadows=4), salt="r")
    plans = [p for p in sample.plans if p.role == "treated"]
    assert len(plans) == 4
    assert len({p.stratum_key for p in plans}) == 4
    assert "capped" in sample.reason


def test_sample_is_deterministic_per_salt() -> None:
    a = plan_shadow_sample(fleet(), RolloutPolicy(), salt="r1").plans
    assert a == plan_shadow_sample(fleet(), RolloutPolicy(), salt="r1").plans
    assert a != plan_shadow_sample(fleet(), RolloutPolicy(), salt="r2").plans


def test_policy_override_errors_name_the_key() -> None:
    with pytest.raises(PolicyError, match=r"policy\.bake_minutes: Input should be greater than or equal to 5"):
        parse_policy({"bake_minutes": 1})
    with pytest.raises(PolicyError, match=r"policy\.no_such_knob: unknown key"):
        parse_policy({"no_such_knob": 1})
    with pytest.raises(PolicyError, match=r"wave_fractions must add up to 1\.0"):
        parse_policy({"wave_fractions": [0.5, 0.2]})
