"""Writes the domain-randomised training corpus in bench/training-corpus/ (run: python bench/make_training_corpus.py).

The failure model learns only from these scenarios (``shadow-rollout train``). Each is drawn at random
(domain randomisation, Tobin et al., "Domain Randomization for Transferring Deep Neural Networks from Simulation
to the Real World", 2017): the model should see so many effect shapes that a new one looks like a variation,
not a stranger. Every draw varies

* the fleet: 1 to 6 scale sets of 8 to 160 VMs, Flexible or Uniform, 1 to 3 SKUs and images, 1 to 3 zones, load
  level, diurnal swing and noise;
* the change: good (a quarter of the draws), or 1 to 2 effects of any mode, each with a magnitude, a share of
  the VMs, an onset (at apply, inside the bake, or after it) and a condition (none, one scale set, SKU, image,
  zone, or a load above a level);
* the faults: Spot evictions and ARM errors now and then.

Kept apart from the validation and held-out generators (bench/make_families.py), so that no family leaks: its
own generator seed, its own SKU and image pools (disjoint from theirs), its own region, scale-set names,
family names (``rx-<mode>``) and scenario seeds (from 5000); ``tests/unit/test_training_corpus.py`` checks that
no training scenario shares a digest, a SKU or an image with a validation or held-out one.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parent
OUT = ROOT / "training-corpus"
GENERATOR_SEED = 1515
SCENARIOS = 400
FIRST_SEED = 5000
REGION = "northeurope"
TRAIN_SKUS = ["Standard_D4s_v5", "Standard_E4s_v5", "Standard_D2as_v5", "Standard_F8s_v2", "Standard_E2s_v5",
              "Standard_D16s_v5", "Standard_B4ms", "Standard_D4s_v3", "Standard_F2s_v2", "Standard_D8as_v5"]
TRAIN_IMAGES = ["ubuntu-22.04-2024.10", "ubuntu-20.04-2024.05", "centos-stream-9", "sles-15-sp6", "almalinux-9",
                "flatcar-3975", "oracle-linux-8"]
MODES = ["crash_on_apply", "apply_timeout", "memory_leak", "cpu_regression", "error_burst", "health_flap",
         "network_degradation", "latent_crash"]
BAKE_MINUTES = 30
"""The default policy's bake: onsets are drawn at apply, inside it, or after it."""


def _weights(rng: random.Random, pool: list[str], k: int) -> dict[str, int]:
    return {v: rng.randint(1, 5) for v in rng.sample(pool, k)}


def fleet(rng: random.Random) -> list[dict[str, Any]]:
    sets = rng.choice([1, 1, 2, 2, 3, 4, 6])
    budget = rng.randint(60, 320)
    out = []
    for i in range(sets):
        d: dict[str, Any] = {
            "name": f"rs{i}-{rng.choice(['app', 'svc', 'job', 'gw', 'db'])}",
            "orchestration": rng.choice(["Flexible", "Flexible", "Uniform"]),
            "capacity": max(8, min(160, int(budget / sets * rng.uniform(0.5, 1.5)))),
            "skus": _weights(rng, TRAIN_SKUS, rng.choice([1, 1, 2, 3])),
            "images": _weights(rng, TRAIN_IMAGES, rng.choice([1, 1, 2, 3])),
            "zones": sorted(rng.sample(["1", "2", "3"], rng.randint(1, 3))),
            "load": {"mean": round(rng.uniform(0.15, 0.75), 2), "diurnal_amplitude": round(rng.uniform(0.0, 0.3), 2),
                     "noise": round(rng.uniform(0.01, 0.15), 3)}}
        out.append(d)
    return out


def condition(rng: random.Random, sets: list[dict[str, Any]]) -> dict[str, Any]:
    kind = rng.choice(["none", "none", "none", "set", "sku", "image", "zone", "load"])
    s = rng.choice(sets)
    if kind == "set" and len(sets) > 1:
        return {"scale_sets": [s["name"]]}
    if kind == "sku":
        return {"skus": [rng.choice(sorted(s["skus"]))]}
    if kind == "image":
        return {"images": [rng.choice(sorted(s["images"]))]}
    if kind == "zone":
        return {"zones": [rng.choice(s["zones"])]}
    if kind == "load":
        return {"load_above": round(rng.uniform(0.3, 0.7), 2)}
    return {}


def onset(rng: random.Random, mode: str) -> float:
    if mode in ("crash_on_apply", "apply_timeout"):
        return 0.0  # they happen at apply, by definition
    kind = rng.choices(["apply", "inside", "after"], weights=[5, 3, 2])[0]
    if kind == "apply":
        return 0.0
    if kind == "inside":
        return float(rng.randint(1, BAKE_MINUTES - 8))
    return float(rng.choice([rng.randint(BAKE_MINUTES + 5, 180), rng.randint(180, 1200)]))


def effect(rng: random.Random, sets: list[dict[str, Any]]) -> dict[str, Any]:
    mode = rng.choice(MODES)
    e: dict[str, Any] = {"mode": mode}
    share = rng.choices(["all", "some", "few"], weights=[4, 4, 2])[0]
    if share != "all":
        e["probability"] = round(rng.uniform(0.15, 0.8) if share == "some" else rng.uniform(0.02, 0.15), 3)
    e["severity"] = round(rng.betavariate(1.2, 1.2), 3)
    start = onset(rng, mode)
    if start:
        e["onset_minutes"] = start
    when = condition(rng, sets)
    if when:
        e["when"] = when
    return e


def draw(rng: random.Random, i: int) -> dict[str, Any]:
    sets = fleet(rng)
    good = rng.random() < 0.25
    effects = [] if good else [effect(rng, sets) for _ in range(rng.choice([1, 1, 1, 2]))]
    family = "rx-good" if good else "rx-" + "+".join(sorted({e["mode"] for e in effects}))
    data: dict[str, Any] = {"name": f"rx-{i:04d}", "family": family, "tags": ["training", "randomised"],
                            "seed": FIRST_SEED + i, "fleet": {"region": REGION, "scale_sets": sets},
                            "change": {"id": f"rx-{i:04d}-change", "kind": rng.choice(["run-command", "extension"]),
                                       "payload": {"script": "apply-config.sh"}, "truth": {"effects": effects}}}
    if rng.random() < 0.15:
        data["faults"] = {"spot_evictions_per_hour": round(rng.uniform(0.0, 2.0), 2),
                          "arm_transient_error_rate": round(rng.uniform(0.0, 0.05), 3)}
    return data


def corpus(n: int = SCENARIOS, seed: int = GENERATOR_SEED) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [draw(rng, i) for i in range(n)]


def write(directory: Path, items: list[dict[str, Any]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.yaml"):
        old.unlink()
    for data in items:
        body = yaml.safe_dump(data, sort_keys=False, width=110)
        (directory / f"{data['name']}.yaml").write_text(f"# Drawn by bench/make_training_corpus.py\n{body}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--scenarios", type=int, default=SCENARIOS)
    p.add_argument("--seed", type=int, default=GENERATOR_SEED)
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    items = corpus(a.scenarios, a.seed)
    write(a.out, items)
    print(f"wrote {len(items)} randomised training scenarios to {a.out}")


if __name__ == "__main__":
    main()
