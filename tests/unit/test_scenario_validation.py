from __future__ import annotations

from pathlib import Path

import pytest

from shared.adapters.simulator.scenario import load_scenario, parse_scenario
from shared.domain.errors import ScenarioError

BASE = {"name": "x", "fleet": {"scale_sets": [{"name": "web", "capacity": 5}]}, "change": {"id": "c"}}


def with_(path: str, value: object) -> dict[str, object]:
    import copy

    d = copy.deepcopy(BASE)
    keys = path.split(".")
    cur: object = d
    for k in keys[:-1]:
        cur = cur[int(k)] if isinstance(cur, list) else cur.setdefault(k, {})  # type: ignore[index,union-attr]
    cur[keys[-1]] = value  # type: ignore[index]
    return d


@pytest.mark.parametrize(("data", "message"), [
    (with_("fleet.scale_sets.0.capacity", 5000),
     r"fleet\.scale_sets\[0\]\.capacity: Input should be less than or equal to 1000 \(got 5000\)"),
    (with_("fleet.scale_sets.0.bogus", 1), r"fleet\.scale_sets\[0\]\.bogus: unknown key"),
    (with_("seed", "seven"), r"seed: Input should be a valid integer"),
    (with_("change.truth", {"effects": [{"mode": "meltdown"}]}), r"change\.truth\.effects\[0\]\.mode: Input should be"),
    (with_("change.truth", {"effects": [{"mode": "memory_leak", "severity": 2}]}),
     r"change\.truth\.effects\[0\]\.severity: Input should be less than or equal to 1"),
    (with_("fleet.scale_sets", [{"name": "a", "capacity": 1}, {"name": "a", "capacity": 2}]),
     r"duplicate scale set name 'a'"),
    (with_("change.truth", {"effects": [{"mode": "latent_crash", "when": {"scale_sets": ["nope"]}}]}),
     r"change\.truth\.effects\[0\]\.when\.scale_sets: unknown scale set 'nope'"),
    (with_("change.truth", {"effects": [{"mode": "latent_crash", "when": {"images": ["ubuntu-2004"]}}]}),
     r"change\.truth\.effects\[0\]\.when\.images: unknown image 'ubuntu-2004'; the fleet declares \['ubuntu-22.04'\]"),
    (with_("change.truth", {"effects": [{"mode": "crash_on_apply", "when": {"skus": ["Standard_D8s_v5"]}}]}),
     r"when\.skus: unknown SKU 'Standard_D8s_v5'; the fleet declares \['Standard_D4s_v5'\]"),
    (with_("change.truth", {"effects": [{"mode": "crash_on_apply", "when": {"zones": ["4"]}}]}),
     r"when\.zones: unknown zone '4'"),
    (with_("fleet.region", "eastus-2"), r"fleet\.region: Value error, unknown region 'eastus-2'"),
    (with_("fleet.scale_sets.0.skus", {"Standard_D4s_V5": 1}), r"unknown SKU 'Standard_D4s_V5': not in the SKU "
                                                                r"catalogue"),
    (with_("faults.spot_unavailable_skus", ["Standard_Q9"]), r"faults\.spot_unavailable_skus: .*unknown SKU"),
    (with_("fleet.scale_sets", [{"name": "web", "capacity": 1}, {"name": "WEB", "capacity": 2}]),
     r"duplicate scale set name 'WEB'"),
    (with_("policy", {"bake_minutes": 0}), r"policy\.bake_minutes"),
    (with_("faults.spot_evictions_per_hour", -1), r"faults\.spot_evictions_per_hour"),
    ({"fleet": 3}, r"name: Field required"),
    (with_("fleet.scale_sets", [{"name": "api", "orchestration": "Uniform", "single_placement_group": True,
                                 "capacity": 101}]),
     r"fleet\.scale_sets\[0\]: .*capacity 101 is above the scale set's maximum of 100"),
    (with_("fleet.scale_sets.0.single_placement_group", True),
     r"fleet\.scale_sets\[0\]: .*a Flexible scale set requires singlePlacementGroup false"),
])
def test_invalid_scenarios_are_refused_naming_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(data)


def test_unreadable_yaml_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match=r"bad\.yaml: not valid YAML"):
        load_scenario(p)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"missing\.yaml: cannot read the file"):
        load_scenario(tmp_path / "missing.yaml")


def test_json_scenarios_are_accepted(tmp_path: Path) -> None:
    import json

    p = tmp_path / "s.json"
    p.write_text(json.dumps(BASE))
    sc = load_scenario(p)
    assert sc.fleet.scale_sets[0].zones == ["1", "2", "3"]
    assert sc.horizon_minutes == 1440 and sc.fleet.region == "eastus"
