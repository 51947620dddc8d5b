"""The failure model's features: what the shadows showed for a VM's stratum, its siblings and the whole
pool, and the VM's own traits. One row per production VM; the column order is the model's contract
(``FEATURES``, versioned by ``FEATURE_VERSION`` and written to ``model/features.json``).

Nothing here names a SKU, an image or a scale set: features are relations ("a stratum sharing this VM's
image failed") and measurements, so a model trained on some fleets applies to others. A VM whose row has a
missing value (no shadow of its stratum was observed, a SKU this build does not know, no recent
telemetry) is left to the statistical judge, and the decision says so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .decisions import ShadowTally
from .judge import Phase, StratumVerdict
from .model import ApplyResult, ApplyStatus, Stratum, VmInfo
from .skus import sku_size

FEATURE_VERSION = "3"
SIGNAL_NAMES = {"cpu_pct": "cpu", "mem_available_pct": "mem", "net_bytes": "net", "error_count": "err",
                "health_ok": "health"}
BAD_DIRECTION = {"cpu": 1.0, "mem": -1.0, "net": -1.0, "err": 1.0, "health": -1.0}
"""Whichever way a signal gets worse: the mode-agnostic features below look only at that way, so a model
that learnt from some failure modes recognises a new one by how strongly something got worse."""
MAX_LOG_P = 12.0

FEATURES: tuple[str, ...] = (
    "own_observed", "own_apply_fail", "own_apply_timeout", "own_apply_minutes",
    "own_mem_slope", "own_judge_score", "own_worst_effect", "own_worst_logp",
    "sku_max_score", "image_max_score", "set_max_score",
    "fleet_fail_share", "fleet_mem_slope", "fleet_worst_effect", "fleet_worst_logp",
    "vm_vcpus", "vm_memory_gib", "vm_uniform",
)
"""Version 3 keeps only mode-agnostic evidence: per-signal columns and the VM's load now let the model learn
which signal or which load a corpus family happened to use, and held-out families showed it (ROC-AUC 0.89
with them, 0.92 without, the same on held-out seeds)."""


@dataclass(frozen=True)
class StratumEvidence:
    """What a stratum's treated shadows showed, reduced to numbers (NaN where a signal had no verdict)."""

    key: str
    phase: str
    judge_score: float | None
    observed: int
    apply_fail: float
    apply_timeout: float
    apply_minutes: float
    effects: dict[str, float] = field(default_factory=dict)
    logp: dict[str, float] = field(default_factory=dict)
    mem_slope: float = math.nan
    shadow_load: float = math.nan
    shadows_changed: int = 0
    shadows_failed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON without NaN (a store need not accept it): missing values become None."""
        return _nan_to_none(asdict(self))  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StratumEvidence:
        def num(v: Any) -> float:
            return math.nan if v is None else float(v)

        return cls(key=d["key"], phase=d["phase"], judge_score=d["judge_score"], observed=int(d["observed"]),
                   apply_fail=num(d["apply_fail"]), apply_timeout=num(d["apply_timeout"]),
                   apply_minutes=num(d["apply_minutes"]), effects={k: num(v) for k, v in d["effects"].items()},
                   logp={k: num(v) for k, v in d["logp"].items()}, mem_slope=num(d["mem_slope"]),
                   shadow_load=num(d["shadow_load"]), shadows_changed=int(d.get("shadows_changed", 0)),
                   shadows_failed=int(d.get("shadows_failed", 0)))


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    return value


def evidence_of(verdict: StratumVerdict, applies: Sequence[ApplyResult], shadow_loads: Sequence[float]
                ) -> StratumEvidence:
    n = len(applies)
    effects = {SIGNAL_NAMES[s.signal]: float(s.relative_change) for s in verdict.signals
               if s.signal in SIGNAL_NAMES and s.phase is not Phase.INCONCLUSIVE}
    logp = {SIGNAL_NAMES[s.signal]: min(MAX_LOG_P, -math.log10(max(s.p_value, 10.0 ** -MAX_LOG_P)))
            for s in verdict.signals if s.signal in SIGNAL_NAMES and s.phase is not Phase.INCONCLUSIVE}
    slope = next((float(s.relative_change) for s in verdict.signals if s.signal == "mem_trend"), math.nan)
    return StratumEvidence(
        key=verdict.stratum_key, phase=verdict.phase.value, judge_score=verdict.score,
        observed=verdict.shadows_observed,
        apply_fail=sum(a.status is ApplyStatus.FAILED for a in applies) / n if n else math.nan,
        apply_timeout=sum(a.status is ApplyStatus.TIMEOUT for a in applies) / n if n else math.nan,
        apply_minutes=max((a.duration_s for a in applies), default=math.nan) / 60.0,
        effects=effects, logp=logp, mem_slope=slope,
        shadow_load=float(np.mean(shadow_loads)) if len(shadow_loads) else math.nan,
        shadows_changed=verdict.shadows_changed, shadows_failed=verdict.shadows_failed)


def shadow_tallies(evidence: Mapping[str, StratumEvidence]) -> dict[str, ShadowTally]:
    """Each stratum's changed and failed shadows, for the decisions' failure-rate bounds."""
    return {k: ShadowTally(e.shadows_failed, e.shadows_changed) for k, e in evidence.items() if e.shadows_changed}


@dataclass
class FeatureTable:
    """Rows of FEATURES for production VMs, with each VM's stratum and the judge's score for the fallback."""

    vm_ids: list[str]
    stratum_keys: list[str]
    matrix: np.ndarray
    judge_scores: list[float | None]
    names: tuple[str, ...] = FEATURES

    def row(self, i: int) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.names, self.matrix[i], strict=True)}

    def missing(self, i: int) -> list[str]:
        return [n for n, v in zip(self.names, self.matrix[i], strict=True) if not np.isfinite(v)]


def build_features(vms: Sequence[VmInfo], evidence: Mapping[str, StratumEvidence],
                   fleet: StratumEvidence | None) -> FeatureTable:
    """One row per VM; evidence is keyed by stratum key."""
    strata = {Stratum.from_key(k): e for k, e in evidence.items()}
    by_sku: dict[str, list[float]] = defaultdict(list)
    by_image: dict[str, list[float]] = defaultdict(list)
    by_set: dict[str, list[float]] = defaultdict(list)
    for s, ev in strata.items():
        score = ev.judge_score if ev.judge_score is not None else math.nan
        by_sku[s.sku].append(score)
        by_image[s.image].append(score)
        by_set[s.scale_set].append(score)
    failing = sum(1 for e in evidence.values() if e.phase == Phase.FAILED.value)
    fleet_share = failing / len(evidence) if evidence else math.nan
    fleet_part = [fleet_share, fleet.mem_slope if fleet else math.nan,
                  *(_worst(fleet) if fleet else (math.nan, math.nan))]
    rows = np.full((len(vms), len(FEATURES)), np.nan, dtype=np.float32)
    scores: list[float | None] = []
    sibling_cache: dict[str, list[float]] = {}
    for i, vm in enumerate(vms):
        st = vm.stratum
        e = evidence.get(st.key)
        scores.append(e.judge_score if e is not None else None)
        own: list[float] = [math.nan] * 8
        if e is not None and e.observed > 0:
            own = [float(e.observed), e.apply_fail, e.apply_timeout, e.apply_minutes,
                   e.mem_slope, e.judge_score if e.judge_score is not None else math.nan, *_worst(e)]
        own_score = e.judge_score if e is not None and e.judge_score is not None else math.nan
        siblings = sibling_cache.get(st.key)  # a function of the stratum alone: once per stratum, not per VM
        if siblings is None:
            siblings = sibling_cache[st.key] = [
                _max_other(by_sku[st.sku], own_score), _max_other(by_image[st.image], own_score),
                _max_other(by_set[st.scale_set], own_score)]
        size = sku_size(vm.sku)
        traits = [float(size[0]) if size else math.nan, float(size[1]) if size else math.nan,
                  1.0 if vm.orchestration == "Uniform" else 0.0]
        rows[i] = own + siblings + fleet_part + traits
    return FeatureTable([vm.vm_id for vm in vms], [vm.stratum.key for vm in vms], rows, scores)


def _worst(e: StratumEvidence) -> tuple[float, float]:
    """The largest change for the worse over all signals, and the significance of the worse-going ones."""
    worse = [(e.effects[s] * d, e.logp.get(s, 0.0)) for s, d in BAD_DIRECTION.items() if s in e.effects]
    if not worse:
        return math.nan, math.nan
    return max(w for w, _ in worse), max((p for w, p in worse if w > 0), default=0.0)


def _max_other(scores: list[float], own: float) -> float:
    """The highest score among a VM's sibling strata, its own stratum left out once (0 when it has none)."""
    rest = list(scores)
    if not math.isnan(own) and own in rest:
        rest.remove(own)
    elif math.isnan(own):
        nan_i = next((i for i, v in enumerate(rest) if math.isnan(v)), None)
        if nan_i is not None:
            rest.pop(nan_i)
    finite = [v for v in rest if not math.isnan(v)]
    return max(finite) if finite else 0.0
