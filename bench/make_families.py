"""Writes the validation and held-out scenario families (run: python bench/make_families.py).

The families are split three ways before any tuning, by this committed generator:

* **training**: ``bench/scenarios`` (bench/make_corpus.py), the only corpus the failure model learns from;
* **validation** (``bench/validation-families/``): what chooses features, hyper-parameters, and the model versus
  the judge (``shadow-rollout select-model``);
* **held-out** (``bench/heldout-families/``): never trained or validated on; the benchmark's headline.

Validation and held-out scenarios are drawn by a seeded generator (domain randomisation: magnitude, share of VMs
affected, onset and fleet shape drawn within each family's range), with effect shapes, fleet shapes and SKUs the
training corpus does not have: sparse crashes on large Uniform sets, flaps on a fraction of VMs, effects limited
to one image across several sets, late crashes on one zone, mixed effects, hot single-SKU fleets, many small sets.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parent
GENERATOR_SEED = 15
NEW_SKUS = ["Standard_F4s_v2", "Standard_E8s_v5", "Standard_D4as_v5", "Standard_D2s_v5", "Standard_D8s_v5"]
NEW_IMAGES = ["debian-12-2024.09", "ubuntu-24.04-2024.11", "rhel-9.4", "mariner-2"]


def scale_set(rng: random.Random, name: str, capacity: int, *, uniform: bool = False, skus: int = 2,
              images: int = 2, zones: list[str] | None = None, mean: float | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": name, "orchestration": "Uniform" if uniform else "Flexible", "capacity": capacity,
        "skus": {s: rng.randint(1, 4) for s in rng.sample(NEW_SKUS, skus)},
        "images": {i: rng.randint(1, 5) for i in rng.sample(NEW_IMAGES, images)},
        "load": {"mean": round(mean if mean is not None else rng.uniform(0.3, 0.6), 2),
                 "diurnal_amplitude": round(rng.uniform(0.05, 0.2), 2), "noise": round(rng.uniform(0.02, 0.08), 2)}}
    if zones:
        d["zones"] = zones
    return d


def fleet(rng: random.Random, shape: str) -> list[dict[str, Any]]:
    """Fleet shapes the training corpus does not have."""
    if shape == "uniform-big":
        return [scale_set(rng, "frontend", rng.randint(180, 240), uniform=True, skus=1, images=1)]
    if shape == "two-flex":
        return [scale_set(rng, "svc-a", rng.randint(70, 110), zones=["1", "3"]),
                scale_set(rng, "svc-b", rng.randint(50, 90), skus=1)]
    if shape == "many-small":
        return [scale_set(rng, f"edge{i:02d}", rng.randint(10, 16), skus=1, images=1) for i in range(12)]
    if shape == "hot-single":
        return [scale_set(rng, "batch", rng.randint(120, 160), skus=1, images=1, mean=0.66)]
    if shape == "small":
        return [scale_set(rng, "tiny", rng.randint(40, 60), skus=1, images=1, zones=["1", "2"])]
    raise ValueError(shape)


def effect(mode: str, **kw: Any) -> dict[str, Any]:
    return {"mode": mode, **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in kw.items()}}


def scenario(name: str, family: str, purpose: str, fleet_: list[dict[str, Any]], effects: list[dict[str, Any]],
             seed: int, tags: list[str]) -> tuple[str, str, dict[str, Any]]:
    return name, purpose, {"name": name, "family": family, "tags": tags, "seed": seed,
                           "fleet": {"region": "westeurope", "scale_sets": fleet_},
                           "change": {"id": f"{name}-change", "kind": "run-command",
                                      "payload": {"script": "apply-config.sh"}, "truth": {"effects": effects}}}


def first_image(f: list[dict[str, Any]]) -> str:
    return sorted(f[0]["images"])[0]


def heldout(rng: random.Random) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    f = fleet(rng, "uniform-big")
    out.append(scenario("hx-crash-sparse-uniform", "hx-crash-sparse", "A few percent of a big Uniform set crash on "
                        "apply, at random.", f, [effect("crash_on_apply", probability=rng.uniform(0.05, 0.08))],
                        201, ["partial", "fleet-wide"]))
    f = fleet(rng, "two-flex")
    out.append(scenario("hx-crash-one-image", "hx-crash-image", "Every VM of one image, across two sets, crashes.",
                        f, [effect("crash_on_apply", when={"images": [first_image(f)]})], 202, ["image"]))
    f = fleet(rng, "uniform-big")
    out.append(scenario("hx-flap-fraction", "hx-flap-fraction", "A flap on a tenth of a big set's VMs.",
                        f, [effect("health_flap", probability=rng.uniform(0.08, 0.15),
                                   severity=rng.uniform(0.0, 0.1))], 203, ["partial", "fleet-wide"]))
    f = fleet(rng, "two-flex")
    out.append(scenario("hx-flap-zone", "hx-flap-zone", "One zone's VMs flap, moderately.", f,
                        [effect("health_flap", severity=rng.uniform(0.1, 0.3), when={"zones": ["3"]})], 204,
                        ["zone"]))
    f = fleet(rng, "many-small")
    out.append(scenario("hx-leak-many-small", "hx-leak-small-sets", "A medium leak, 15 minutes after apply, on "
                        "twelve small sets.", f, [effect("memory_leak", severity=rng.uniform(0.25, 0.45),
                                                         onset_minutes=15)], 205, ["many-sets"]))
    f = fleet(rng, "two-flex")
    out.append(scenario("hx-errors-half", "hx-errors-half", "Error logs surge on half the VMs.", f,
                        [effect("error_burst", probability=0.5, severity=rng.uniform(0.2, 0.4))], 206,
                        ["partial"]))
    f = fleet(rng, "two-flex")
    sku = sorted(f[0]["skus"])[0]
    out.append(scenario("hx-network-one-sku", "hx-network-sku", "Throughput falls on one SKU only.", f,
                        [effect("network_degradation", severity=rng.uniform(0.4, 0.7), when={"skus": [sku]})], 207,
                        ["sku"]))
    f = fleet(rng, "hot-single")
    out.append(scenario("hx-cpu-hot", "hx-cpu-hot", "CPU rises on a hot fleet; busy VMs saturate.", f,
                        [effect("cpu_regression", severity=rng.uniform(0.2, 0.35))], 208, ["high-load"]))
    f = fleet(rng, "two-flex")
    out.append(scenario("hx-latent-90", "hx-latent-soon", "A third of the VMs crash 90 minutes after apply.", f,
                        [effect("latent_crash", probability=rng.uniform(0.25, 0.4), onset_minutes=90)], 209,
                        ["late-onset"]))
    f = fleet(rng, "uniform-big")
    out.append(scenario("hx-latent-zone-600", "hx-latent-zone", "Zone 2 crashes ten hours after apply.", f,
                        [effect("latent_crash", onset_minutes=600, when={"zones": ["2"]})], 210, ["late-onset"]))
    f = fleet(rng, "hot-single")
    out.append(scenario("hx-timeout-partial", "hx-timeout-partial", "A sixth of the applies hang.", f,
                        [effect("apply_timeout", probability=rng.uniform(0.12, 0.2))], 211, ["partial"]))
    f = fleet(rng, "two-flex")
    out.append(scenario("hx-mixed-crash-leak", "hx-mixed", "One set crashes on apply; the other leaks from minute "
                        "20.", f, [effect("crash_on_apply", when={"scale_sets": ["svc-b"]}),
                                   effect("memory_leak", severity=rng.uniform(0.3, 0.5), onset_minutes=20,
                                          when={"scale_sets": ["svc-a"]})], 212, ["mixed"]))
    f = fleet(rng, "many-small")
    out.append(scenario("hx-flap-late", "hx-flap-late", "The probe starts to flap an hour after apply.", f,
                        [effect("health_flap", severity=rng.uniform(0.2, 0.5), onset_minutes=60)], 213,
                        ["late-onset"]))
    for i, shape in enumerate(("small", "many-small", "two-flex", "hot-single", "small")):
        out.append(scenario(f"hx-good-{shape}-{i}", "hx-good", f"A good change on a {shape} fleet.",
                            fleet(rng, shape), [], 220 + i, ["good"]))
    return out


def heldout_onsets(rng: random.Random) -> list[tuple[str, str, dict[str, Any]]]:
    """Slow effects whose onset comes after a sequential bake's minimum (issue 16), where a short bake could lose.

    Drawn from a generator of their own, so adding them left every earlier family as it was.
    """
    out = []
    f = fleet(rng, "two-flex")
    out.append(scenario("hx-onset-30-slow-leak", "hx-onset-slow", "A slow leak begins 30 minutes after apply.", f,
                        [effect("memory_leak", severity=rng.uniform(0.1, 0.2), onset_minutes=30)], 214,
                        ["late-onset", "subtle"]))
    f = fleet(rng, "many-small")
    out.append(scenario("hx-onset-40-slow-cpu", "hx-onset-slow", "CPU creeps up 40 minutes after apply on twelve "
                        "small sets.", f, [effect("cpu_regression", severity=rng.uniform(0.12, 0.2),
                                                  onset_minutes=40)], 215, ["late-onset", "subtle"]))
    return out


def validation(rng: random.Random) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    f = fleet(rng, "two-flex")
    out.append(scenario("vx-crash-quarter", "vx-crash", "A quarter of the VMs crash on apply.", f,
                        [effect("crash_on_apply", probability=rng.uniform(0.2, 0.3))], 301, ["partial"]))
    f = fleet(rng, "uniform-big")
    out.append(scenario("vx-leak-fast", "vx-leak", "A fast leak everywhere.", f,
                        [effect("memory_leak", severity=rng.uniform(0.5, 0.8))], 302, []))
    f = fleet(rng, "two-flex")
    out.append(scenario("vx-errors-image", "vx-errors", "Errors rise on one image.", f,
                        [effect("error_burst", severity=rng.uniform(0.3, 0.6), when={"images": [first_image(f)]})],
                        303, ["image"]))
    f = fleet(rng, "many-small")
    out.append(scenario("vx-flap-all", "vx-flap", "Every VM flaps.", f,
                        [effect("health_flap", severity=rng.uniform(0.2, 0.5))], 304, []))
    f = fleet(rng, "two-flex")
    out.append(scenario("vx-network-zone", "vx-network", "One zone's network degrades.", f,
                        [effect("network_degradation", severity=rng.uniform(0.4, 0.8), when={"zones": ["1"]})], 305,
                        ["zone"]))
    f = fleet(rng, "hot-single")
    out.append(scenario("vx-cpu-strong", "vx-cpu", "CPU rises strongly everywhere.", f,
                        [effect("cpu_regression", severity=rng.uniform(0.5, 0.8))], 306, []))
    for i, shape in enumerate(("two-flex", "uniform-big")):
        out.append(scenario(f"vx-good-{shape}", "vx-good", f"A good change on a {shape} fleet.", fleet(rng, shape),
                            [], 320 + i, ["good"]))
    return out


def write(directory: Path, items: list[tuple[str, str, dict[str, Any]]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.yaml"):
        old.unlink()
    for name, purpose, data in items:
        body = yaml.safe_dump(data, sort_keys=False, width=110)
        (directory / f"{name}.yaml").write_text(f"# {purpose}\n{body}")


def main() -> None:
    rng = random.Random(GENERATOR_SEED)
    held, val = heldout(rng), validation(rng)
    held += heldout_onsets(random.Random(GENERATOR_SEED + 1000))
    write(ROOT / "heldout-families", held)
    write(ROOT / "validation-families", val)
    print(f"wrote {len(held)} held-out and {len(val)} validation scenarios")


if __name__ == "__main__":
    main()
