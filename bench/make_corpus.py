"""Writes the scenario corpus in bench/scenarios/ (run: python bench/make_corpus.py).

Each scenario says in its header comment what it is meant to test. The corpus spans good changes on varied
fleets, every mode alone, rare strata, load-dependent effects, onsets before and after any sensible bake,
subtle severities, faults at high rates, and fleets of 5,000 to 50,000 VMs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).parent / "scenarios"

MIXED_SKUS = {"Standard_D2s_v5": 2, "Standard_D4s_v5": 3, "Standard_D8s_v5": 1}
MIXED_IMAGES = {"ubuntu-22.04-2024.10": 4, "ubuntu-20.04-2024.05": 1}


def ss(name: str, capacity: int, *, skus: dict[str, float] | None = None, images: dict[str, float] | None = None,
       zones: list[str] | None = None, orchestration: str = "Flexible", mean: float = 0.45, amp: float = 0.12,
       noise: float = 0.04) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name, "orchestration": orchestration, "capacity": capacity,
                         "skus": skus or MIXED_SKUS, "images": images or MIXED_IMAGES,
                         "load": {"mean": mean, "diurnal_amplitude": amp, "noise": noise}}
    if zones:
        d["zones"] = zones
    return d


def standard_fleet(scale: int = 1) -> list[dict[str, Any]]:
    return [ss("web", 120 * scale), ss("api", 60 * scale, orchestration="Uniform",
                                       skus={"Standard_D8s_v5": 1}, images={"ubuntu-22.04-2024.10": 1}),
            ss("worker", 40 * scale, skus={"Standard_E4s_v5": 1}, zones=["1", "2"], mean=0.55)]


def effect(mode: str, **kw: Any) -> dict[str, Any]:
    return {"mode": mode, **kw}


def scenario(name: str, family: str, purpose: str, fleet: list[dict[str, Any]], effects: list[dict[str, Any]],
             *, seed: int, kind: str = "run-command", tags: list[str] | None = None,
             faults: dict[str, Any] | None = None) -> tuple[str, str, dict[str, Any]]:
    data: dict[str, Any] = {"name": name, "family": family, "tags": tags or [], "seed": seed,
                            "fleet": {"region": "eastus", "scale_sets": fleet},
                            "change": {"id": f"{name}-change", "kind": kind,
                                       "payload": {"script": "apply-config.sh"}, "truth": {"effects": effects}}}
    if faults:
        data["faults"] = faults
    return name, purpose, data


def corpus() -> list[tuple[str, str, dict[str, Any]]]:
    c = []
    # ---- good changes: no effect at all; every VM should end on the new config, nothing halted
    c += [
        scenario("good-small", "good", "A good change on a small, quiet, uniform fleet.",
                 [ss("web", 60, skus={"Standard_D4s_v5": 1}, images={"ubuntu-22.04": 1}, noise=0.02)], [], seed=1),
        scenario("good-standard", "good", "A good change on the standard three-set fleet.", standard_fleet(), [],
                 seed=2),
        scenario("good-noisy-diurnal", "good", "High noise and a strong diurnal swing: fixed thresholds misfire.",
                 [ss("web", 200, mean=0.55, amp=0.25, noise=0.12), ss("api", 80, mean=0.5, amp=0.2, noise=0.1)],
                 [], seed=3, tags=["noisy"]),
        scenario("good-hot-fleet", "good", "A busy fleet near its capacity: spikes push CPU past 90%.",
                 [ss("web", 150, mean=0.72, amp=0.1, noise=0.08)], [], seed=4, tags=["noisy", "high-load"]),
        scenario("good-heterogeneous", "good", "Many SKUs, images and zones: many small strata, one good change.",
                 [ss("mixed", 240, skus={"Standard_D2s_v5": 1, "Standard_D4s_v5": 1, "Standard_E4s_v5": 1,
                                         "Standard_F4s_v2": 1, "Standard_D2as_v5": 1},
                     images={"ubuntu-22.04": 3, "ubuntu-20.04": 1, "rhel-9.4": 1, "mariner-2": 1})], [], seed=5),
        scenario("good-many-sets", "good", "Twenty small scale sets: orchestration fan-out, per-set capacity.",
                 [ss(f"svc{i:02d}", 15, skus={"Standard_D2s_v5": 1}) for i in range(20)], [], seed=6),
        scenario("good-extension", "good", "A good change delivered as a VM extension.", standard_fleet(), [],
                 seed=7, kind="extension"),
        scenario("good-model-update", "good", "A good scale-set model update rolled by update_instances.",
                 standard_fleet(), [], seed=8, kind="model-update"),
        scenario("good-rare-strata", "good", "A good change on a fleet with strata under 5% of the fleet.",
                 [ss("web", 300, skus={"Standard_D4s_v5": 30, "Standard_D2s_v5": 1},
                     images={"ubuntu-22.04": 30, "ubuntu-20.04": 1})], [], seed=9, tags=["rare-stratum"]),
        scenario("good-spot-evictions", "good", "A good change while Spot shadows are evicted often.",
                 standard_fleet(), [], seed=10, faults={"spot_evictions_per_hour": 0.5}),
        scenario("good-flaky-arm", "good", "A good change while ARM throttles and fails transiently.",
                 standard_fleet(), [], seed=11, faults={"arm_throttle_rate": 0.2, "arm_transient_error_rate": 0.1}),
    ]
    # ---- each mode alone, on the whole fleet
    c += [
        scenario("crash-all", "crash_on_apply", "The change crashes every VM on apply: halt before production.",
                 standard_fleet(), [effect("crash_on_apply")], seed=20),
        scenario("timeout-all", "apply_timeout", "The apply hangs everywhere: halt before production.",
                 standard_fleet(), [effect("apply_timeout")], seed=21),
        scenario("leak-fast-all", "memory_leak", "A fast memory leak everywhere, visible within any bake.",
                 standard_fleet(), [effect("memory_leak", severity=0.7)], seed=22),
        scenario("leak-slow-all", "memory_leak", "A slow leak (hours to exhaustion): only a trend shows it.",
                 standard_fleet(), [effect("memory_leak", severity=0.08)], seed=23, tags=["subtle"]),
        scenario("cpu-regression-all", "cpu_regression", "CPU rises by 50 points everywhere: VMs saturate.",
                 standard_fleet(), [effect("cpu_regression", severity=0.8)], seed=24),
        scenario("error-burst-all", "error_burst", "Error logs surge everywhere while health stays up.",
                 standard_fleet(), [effect("error_burst", severity=0.6)], seed=25),
        scenario("health-flap-all", "health_flap", "The health probe flaps everywhere.", standard_fleet(),
                 [effect("health_flap", severity=0.5)], seed=26),
        scenario("network-degradation-all", "network_degradation", "Throughput falls and errors rise everywhere.",
                 standard_fleet(), [effect("network_degradation", severity=0.6)], seed=27),
        scenario("latent-crash-all", "latent_crash", "Every VM crashes 3 hours after apply: after any bake.",
                 standard_fleet(), [effect("latent_crash", onset_minutes=180)], seed=28, tags=["late-onset"]),
    ]
    # ---- subtle and partial effects
    c += [
        scenario("cpu-regression-subtle", "cpu_regression", "CPU rises 6 points: saturates only the busy worker "
                 "set at its daily peak.", standard_fleet(), [effect("cpu_regression", severity=0.1)], seed=30,
                 tags=["subtle"]),
        scenario("error-burst-subtle", "error_burst", "A small error increase (x2): is it worth stopping?",
                 standard_fleet(), [effect("error_burst", severity=0.05)], seed=31, tags=["subtle"]),
        scenario("health-flap-subtle", "health_flap", "A rare flap (22% of probes) on a third of the VMs.",
                 standard_fleet(), [effect("health_flap", severity=0.03, probability=0.33)], seed=32,
                 tags=["subtle", "partial"]),
        scenario("crash-partial", "crash_on_apply", "10% of VMs crash on apply, at random across strata.",
                 standard_fleet(), [effect("crash_on_apply", probability=0.1)], seed=33, tags=["partial"]),
        scenario("latent-partial", "latent_crash", "20% of VMs crash 2 hours after apply.",
                 standard_fleet(), [effect("latent_crash", probability=0.2, onset_minutes=120)], seed=34,
                 tags=["partial", "late-onset"]),
    ]
    # ---- rare strata
    rare_fleet = [ss("web", 400, skus={"Standard_D4s_v5": 40, "Standard_D2s_v5": 1},
                     images={"ubuntu-22.04": 40, "ubuntu-20.04": 1})]
    c += [
        scenario("rare-sku-crash", "rare_stratum", "Only the rare D2s_v5 SKU (about 2% of VMs) crashes on apply.",
                 rare_fleet, [effect("crash_on_apply", when={"skus": ["Standard_D2s_v5"]})], seed=40,
                 tags=["rare-stratum"]),
        scenario("rare-image-leak", "rare_stratum", "Only the rare ubuntu-20.04 image leaks memory.",
                 rare_fleet, [effect("memory_leak", severity=0.5, when={"images": ["ubuntu-20.04"]})], seed=41,
                 tags=["rare-stratum"]),
        scenario("rare-zone-network", "rare_stratum", "Only zone 3 of one scale set degrades its network.",
                 standard_fleet(), [effect("network_degradation", severity=0.5,
                                           when={"scale_sets": ["api"], "zones": ["3"]})], seed=42,
                 tags=["rare-stratum"]),
        scenario("rare-set-flap", "rare_stratum", "Only the small worker set's health flaps.",
                 standard_fleet(), [effect("health_flap", severity=0.5, when={"scale_sets": ["worker"]})],
                 seed=43, tags=["rare-stratum"]),
    ]
    # ---- load-dependent
    c += [
        scenario("load-cpu-hot-set", "load_dependent", "CPU regresses only on VMs above 60% load: the busy set.",
                 [ss("web", 150, mean=0.35), ss("batch", 100, mean=0.72, noise=0.05)],
                 [effect("cpu_regression", severity=0.4, when={"load_above": 0.6})], seed=50, tags=["load"]),
        scenario("load-errors-peak", "load_dependent", "Errors surge only above 55% load: shows at the daily peak.",
                 [ss("web", 200, mean=0.5, amp=0.2, noise=0.06)],
                 [effect("error_burst", severity=0.6, when={"load_above": 0.55})], seed=51, tags=["load"]),
        scenario("load-leak-busy", "load_dependent", "A leak only under load above 65%, on a mixed fleet.",
                 [*standard_fleet(), ss("batch", 60, mean=0.75, skus={"Standard_F4s_v2": 1})],
                 [effect("memory_leak", severity=0.4, when={"load_above": 0.65})], seed=52, tags=["load"]),
    ]
    # ---- onsets around the bake
    c += [
        scenario("onset-inside-bake", "onset", "An error burst 15 minutes after apply: inside the bake.",
                 standard_fleet(), [effect("error_burst", severity=0.5, onset_minutes=15)], seed=60),
        scenario("onset-after-bake", "onset", "A crash 45 minutes after apply: just after the bake.",
                 standard_fleet(), [effect("latent_crash", onset_minutes=45, probability=0.5)], seed=61,
                 tags=["late-onset"]),
        scenario("onset-overnight", "onset", "A crash 12 hours after apply, on a fifth of the VMs.",
                 standard_fleet(), [effect("latent_crash", onset_minutes=720, probability=0.2)], seed=62,
                 tags=["late-onset"]),
        scenario("onset-two-effects", "onset", "A leak on one image now and a late crash on one set later.",
                 standard_fleet(), [effect("memory_leak", severity=0.6, when={"images": ["ubuntu-20.04-2024.05"]}),
                                    effect("latent_crash", probability=0.3, onset_minutes=150,
                                           when={"scale_sets": ["worker"]})], seed=63),
    ]
    c += onset_sweep()
    # ---- faults at high rates
    c += [
        scenario("faults-evictions-bad", "faults", "A bad change while half the shadows are evicted per hour.",
                 standard_fleet(), [effect("error_burst", severity=0.6, when={"scale_sets": ["web"]})], seed=70,
                 faults={"spot_evictions_per_hour": 1.0}),
        scenario("faults-no-spot", "faults", "Spot refused for two SKUs: shadows fall back to regular VMs.",
                 standard_fleet(), [effect("crash_on_apply", when={"skus": ["Standard_D8s_v5"]})], seed=71,
                 faults={"spot_unavailable_skus": ["Standard_D8s_v5", "Standard_E4s_v5"]}),
        scenario("faults-arm-storm", "faults", "ARM throttles 40% and fails 15% of first attempts; a latent crash.",
                 standard_fleet(), [effect("latent_crash", probability=0.2, onset_minutes=90)], seed=72,
                 faults={"arm_throttle_rate": 0.4, "arm_transient_error_rate": 0.15}),
        scenario("faults-restore-flaky", "faults", "Snapshots and restores fail often; VMs must still recover.",
                 standard_fleet(), [effect("latent_crash", probability=0.3, onset_minutes=60)], seed=73,
                 faults={"snapshot_failure_rate": 0.3, "restore_failure_rate": 0.5}),
        scenario("faults-everything", "faults", "All faults at once, on a good change.", standard_fleet(), [],
                 seed=74, faults={"spot_evictions_per_hour": 0.5, "spot_unavailable_skus": ["Standard_E4s_v5"],
                                  "arm_throttle_rate": 0.2, "arm_transient_error_rate": 0.1,
                                  "snapshot_failure_rate": 0.2, "restore_failure_rate": 0.3}),
    ]
    # ---- Uniform-only fleets (restore by reimage) and capacity pressure
    c += [
        scenario("uniform-latent", "latent_crash", "Uniform scale sets only: restores go through reimage.",
                 [ss(f"u{i}", 80, orchestration="Uniform", skus={"Standard_D4s_v5": 1}) for i in range(3)],
                 [effect("latent_crash", probability=0.25, onset_minutes=100)], seed=80),
        scenario("capacity-pressure", "capacity", "A busy set loses a third of its VMs: scale out ahead.",
                 [ss("busy", 90, mean=0.66, amp=0.08, noise=0.03, skus={"Standard_D4s_v5": 1})],
                 [effect("latent_crash", probability=0.33, onset_minutes=70)], seed=81, tags=["high-load"]),
    ]
    # ---- scale: fleets of 5,000 to 50,000 VMs
    def big(n: int, per: int = 1000) -> list[dict[str, Any]]:
        return [ss(f"s{i:03d}", per, orchestration="Uniform" if i % 4 == 3 else "Flexible",
                   skus={"Standard_D2s_v5": 1, "Standard_D4s_v5": 3, "Standard_E4s_v5": 1}) for i in range(n // per)]

    c += [
        scenario("scale-5k-good", "scale", "5,000 VMs, a good change.", big(5000), [], seed=90, tags=["scale"]),
        scenario("scale-10k-rare", "scale", "10,000 VMs, a leak on one rare stratum.", big(10000),
                 [effect("memory_leak", severity=0.5, when={"skus": ["Standard_E4s_v5"],
                                                           "images": ["ubuntu-20.04-2024.05"]})], seed=91,
                 tags=["scale", "rare-stratum"]),
        scenario("scale-20k-latent", "scale", "20,000 VMs, 1% crash 4 hours after apply.", big(20000),
                 [effect("latent_crash", probability=0.01, onset_minutes=240)], seed=92, tags=["scale"]),
        scenario("scale-50k-good", "scale", "50,000 VMs, a good change.", big(50000), [], seed=93, tags=["scale"]),
    ]
    return c


ONSET_SWEEP_MINUTES = (20, 30, 40)
"""Onsets where a sequential bake could stop before the effect shows: after its minimum (10), around the policy's
30-minute bake, and after it, while the shadows still lead production (issue #14)."""


def onset_sweep() -> list[tuple[str, str, dict[str, Any]]]:
    """Effects that begin 20, 30 and 40 minutes after apply, each once fast and once slow, in several modes.

    Written for the anytime-valid bake before any tuning of it: a bake that ends early on "no harm" must still catch
    these, from the shadows it keeps watching through the waves or from the waves themselves. The slow ones move
    their signal little at first (a leak that exhausts memory only after hours, a CPU creep that saturates only the
    busy set, a rare flap), so no short window shows them plainly.
    """
    out = []
    fast = {20: ("error_burst", {"severity": 0.5}, "Error logs surge"),
            30: ("cpu_regression", {"severity": 0.6}, "CPU rises 36 points"),
            40: ("network_degradation", {"severity": 0.5}, "Throughput falls by 40% and errors rise")}
    slow = {20: ("memory_leak", {"severity": 0.1}, "A slow leak (about 4 hours to exhaustion) begins"),
            30: ("health_flap", {"severity": 0.05, "probability": 0.4},
                 "A rare flap (23% of probes) on 40% of the VMs begins"),
            40: ("cpu_regression", {"severity": 0.15}, "CPU creeps 9 points: only busy VMs saturate,")}
    for onset in ONSET_SWEEP_MINUTES:
        mode, kw, what = fast[onset]
        out.append(scenario(f"onset-{onset}-{mode.replace('_', '-')}", "onset",
                            f"{what} {onset} minutes after apply: after a sequential bake's minimum.",
                            standard_fleet(), [effect(mode, onset_minutes=onset, **kw)], seed=100 + onset,
                            tags=["onset-sweep"]))
        mode, kw, what = slow[onset]
        out.append(scenario(f"onset-{onset}-slow-{mode.replace('_', '-')}", "onset",
                            f"{what} {onset} minutes after apply: a slow effect after a sequential bake's minimum.",
                            [*standard_fleet(), ss("batch", 60, mean=0.7, skus={"Standard_F4s_v2": 1})],
                            [effect(mode, onset_minutes=onset, **kw)], seed=101 + onset,
                            tags=["onset-sweep", "subtle"]))
    out.append(scenario("onset-30-latent-partial", "latent_crash",
                        "A third of the VMs crash 30 minutes after apply: the end of a 30-minute bake.",
                        standard_fleet(), [effect("latent_crash", onset_minutes=30, probability=0.33)], seed=135,
                        tags=["onset-sweep", "partial"]))
    return out


def files() -> dict[str, str]:
    """Every scenario file's name and text, as written (a test checks the committed corpus against it)."""
    return {f"{name}.yaml": f"# {purpose}\n" + yaml.safe_dump(data, sort_keys=False, width=110)
            for name, purpose, data in corpus()}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.yaml"):
        old.unlink()
    written = files()
    for name, text in written.items():
        (OUT / name).write_text(text)
    print(f"wrote {len(written)} scenarios to {OUT}")


if __name__ == "__main__":
    main()
