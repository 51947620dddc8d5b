"""Risk-adaptive production waves: how many, how large and how long each is watched follow the evidence.

Why: a fixed 5/20/35/40% schedule with 10-minute watches costs a good change about 44 minutes after the bake,
whatever the bake showed. When the predicted failure rate is low and the bake was clean (no stratum harmed,
suspect or uncovered, and "no harm" at the tolerable effect shown by every included stratum or by the pooled
shadows: :mod:`shared.domain.sequential`), the shadows keep watching as leading indicators and the 24-hour
production watch stays as the backstop: fewer waves with short, sequentially tested watches lose little. Any
doubt (a suspect or uncovered stratum, no harm not shown, a harmed stratum skipped, a higher predicted rate)
brings more, smaller waves, watched longer. Whatever the level, the first wave holds a slice of every included
stratum, so a problem the shadows missed shows in the smallest wave wherever it lives.

A wave's watch has a minimum and a maximum: the caller ends it at the minimum when the production sequential test
shows no harm, and at the latest at the maximum (equal bounds give a fixed watch, as before).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from itertools import pairwise

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .policy import RolloutPolicy
from .sampling import split_waves
from .sequential import SeqVerdict, StratumSequence, suspicious


class RiskLevel(StrEnum):
    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"


def _geometric(waves: int, first: float) -> tuple[float, ...]:
    """``waves`` shares that start at ``first`` and grow by a constant factor to add up to 1 (1 wave: all)."""
    if waves <= 1:
        return (1.0,)
    lo, hi = 1.0, 100.0
    for _ in range(60):  # bisection on the growth factor: first * (r^n - 1) / (r - 1) = 1
        ratio = (lo + hi) / 2
        if first * (ratio ** waves - 1) / (ratio - 1) < 1.0:
            lo = ratio
        else:
            hi = ratio
    head = [round(first * lo ** i, 6) for i in range(waves - 1)]
    return (*head, round(1.0 - sum(head), 6))


class WaveShape(BaseModel):
    """One level's schedule: the share of the included VMs in each wave and the bounds of each watch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fractions: tuple[float, ...] = Field(min_length=1)
    min_watch_minutes: float = Field(ge=0.0)
    max_watch_minutes: float = Field(gt=0.0)

    @model_validator(mode="after")
    def _check(self) -> WaveShape:
        if abs(sum(self.fractions) - 1.0) > 1e-6 or any(f <= 0 for f in self.fractions):
            raise ValueError(f"fractions must be > 0 and add up to 1.0 (got {self.fractions})")
        if self.min_watch_minutes > self.max_watch_minutes:
            raise ValueError("min_watch_minutes must be <= max_watch_minutes")
        return self


class WaveDesign(BaseModel):
    """Where the levels begin and each level's shape; :meth:`from_policy` keeps the policy's as the moderate one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low_risk_rate: float = Field(0.01, ge=0.0, le=1.0, description="Predicted rate at or under which risk is low.")
    high_risk_rate: float = Field(0.05, ge=0.0, le=1.0, description="Predicted rate from which risk is high.")
    low: WaveShape = WaveShape(fractions=_geometric(3, 0.1), min_watch_minutes=3.0, max_watch_minutes=10.0)
    moderate: WaveShape = WaveShape(fractions=(0.05, 0.2, 0.35, 0.4), min_watch_minutes=10.0,
                                    max_watch_minutes=10.0)
    high: WaveShape = WaveShape(fractions=_geometric(5, 0.02), min_watch_minutes=15.0, max_watch_minutes=20.0)

    @model_validator(mode="after")
    def _check(self) -> WaveDesign:
        if self.low_risk_rate > self.high_risk_rate:
            raise ValueError("low_risk_rate must be <= high_risk_rate")
        shapes = (self.low, self.moderate, self.high)
        if any(len(a.fractions) > len(b.fractions) or a.min_watch_minutes > b.min_watch_minutes
               or a.max_watch_minutes > b.max_watch_minutes for a, b in pairwise(shapes)):
            raise ValueError("more risk must never mean fewer waves or shorter watches")
        return self

    @classmethod
    def from_policy(cls, policy: RolloutPolicy) -> WaveDesign:
        """The policy's waves and watch are the moderate level; low and high are bounded by them."""
        watch = float(policy.wave_watch_minutes)
        moderate = WaveShape(fractions=policy.wave_fractions, min_watch_minutes=watch, max_watch_minutes=watch)
        low_n = max(1, min(3, len(policy.wave_fractions) - 1))
        low = WaveShape(fractions=_geometric(low_n, 0.1), min_watch_minutes=min(3.0, watch),
                        max_watch_minutes=watch)
        high = WaveShape(fractions=_geometric(len(policy.wave_fractions) + 1, 0.02),
                         min_watch_minutes=1.5 * watch, max_watch_minutes=2.0 * watch)
        return cls(low=low, moderate=moderate, high=high)


class BakeEvidence(BaseModel):
    """What the bake showed about the strata that proceed, and about those it skipped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    no_harm: int = Field(0, ge=0, description="Included strata shown free of harm at the tolerable effect.")
    inconclusive: int = Field(0, ge=0, description="Included strata whose bake ended undecided.")
    suspicious: int = Field(0, ge=0, description="Of the undecided, those with strong (not conclusive) harm evidence.")
    uncovered: int = Field(0, ge=0, description="Included strata without shadow evidence.")
    harmed_skipped: int = Field(0, ge=0, description="Strata shown harmed, skipped: proof the change can harm.")
    fleet_no_harm: bool = Field(False, description="Every shadow pooled showed no harm at the tolerable effect.")

    @classmethod
    def from_states(cls, states: Mapping[str, StratumSequence], included: Iterable[str],
                    fleet: StratumSequence | None = None) -> BakeEvidence:
        """Count the included strata by their sequential verdict (no state: uncovered) and the harmed ones left
        out; ``fleet`` is the pooled sequence over every shadow."""
        inc = set(included)
        counts = {"no_harm": 0, "inconclusive": 0, "suspicious": 0, "uncovered": 0}
        for key in inc:
            st = states.get(key)
            if st is None:
                counts["uncovered"] += 1
            elif st.verdict is SeqVerdict.NO_HARM:
                counts["no_harm"] += 1
            else:
                counts["inconclusive"] += 1
                counts["suspicious"] += int(suspicious(st))
        harmed = sum(1 for k, st in states.items() if st.verdict is SeqVerdict.HARM and k not in inc)
        return cls(**counts, harmed_skipped=harmed,
                   fleet_no_harm=fleet is not None and fleet.verdict is SeqVerdict.NO_HARM)


class Wave(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    vm_ids: tuple[str, ...]
    min_watch_minutes: float
    max_watch_minutes: float


class WavePlan(BaseModel):
    """The waves in order, the level that chose them, and why (with the numbers)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: RiskLevel
    waves: tuple[Wave, ...]
    reason: str


def assess_risk(predicted_rate: float, bake: BakeEvidence, design: WaveDesign) -> tuple[RiskLevel, str]:
    """Low only when the prediction is low and the bake was clean; high on any harm shown or a high prediction;
    moderate otherwise.

    A clean bake: no stratum harmed, none uncovered or suspect, and either every included stratum showed no harm or
    the pooled shadows did (strata still undecided then stay watched on their shadows through the waves).
    """
    facts = (f"predicted failure rate {predicted_rate:.2%}; bake: {bake.no_harm} strata no harm, "
             f"{bake.inconclusive} undecided ({bake.suspicious} suspect), {bake.uncovered} uncovered, "
             f"{bake.harmed_skipped} harmed and skipped; pooled shadows "
             f"{'show no harm' if bake.fleet_no_harm else 'do not show no harm'}")
    if bake.harmed_skipped or predicted_rate >= design.high_risk_rate:
        why = (f"{bake.harmed_skipped} strata showed harm" if bake.harmed_skipped
               else f"predicted rate >= {design.high_risk_rate:.0%}")
        return RiskLevel.HIGH, f"high risk ({why}): {facts}"
    every_stratum = bake.no_harm > 0 and not bake.inconclusive
    clean = not bake.uncovered and not bake.suspicious and (every_stratum or bake.fleet_no_harm)
    if predicted_rate <= design.low_risk_rate and clean:
        return RiskLevel.LOW, f"low risk (predicted rate <= {design.low_risk_rate:.0%}, clean bake): {facts}"
    doubt = []
    if predicted_rate > design.low_risk_rate:
        doubt.append(f"predicted rate > {design.low_risk_rate:.0%}")
    if bake.uncovered:
        doubt.append("uncovered strata")
    if bake.suspicious:
        doubt.append("suspect strata")
    if not (every_stratum or bake.fleet_no_harm):
        doubt.append("no harm not shown")
    return RiskLevel.MODERATE, f"moderate risk ({'; '.join(doubt)}): {facts}"


def plan_adaptive_waves(vms_by_stratum: Mapping[str, list[str]], predicted_rate: float, bake: BakeEvidence,
                        design: WaveDesign, salt: str) -> WavePlan:
    """The waves for the included VMs (by stratum key), shaped by the risk level, each a slice of every stratum."""
    level, why = assess_risk(predicted_rate, bake, design)
    shape = {RiskLevel.LOW: design.low, RiskLevel.MODERATE: design.moderate, RiskLevel.HIGH: design.high}[level]
    groups = split_waves(vms_by_stratum, shape.fractions, salt)
    waves = tuple(Wave(vm_ids=tuple(g), min_watch_minutes=shape.min_watch_minutes,
                       max_watch_minutes=shape.max_watch_minutes) for g in groups)
    sizes = "/".join(str(len(w.vm_ids)) for w in waves)
    watch = (f"{shape.min_watch_minutes:g} min" if shape.min_watch_minutes == shape.max_watch_minutes
             else f"{shape.min_watch_minutes:g}-{shape.max_watch_minutes:g} min (sequentially tested)")
    return WavePlan(level=level, waves=waves,
                    reason=f"{len(waves)} waves of {sizes} VMs, each watched {watch}: {why}")


class WatchCadence(BaseModel):
    """How often production is checked after the last wave, and why (with the numbers)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_minutes: float = Field(gt=0.0)
    reason: str


def watch_cadence(wave_starts: Sequence[float], policy: RolloutPolicy) -> WatchCadence:
    """The production watch's interval, from the lead each wave has over the next.

    An effect whose onset comes ``T`` minutes after apply reaches a VM changed at ``t_k`` at ``t_k + T``, whatever
    ``T`` is: the waves' onsets keep the spacing of their applies. So once the shadows are gone, what protects wave
    ``k + 1`` from a late onset is the lead of wave ``k`` over it: the onset on wave ``k`` must be found (the health
    rule needs ``unhealthy_probe_minutes`` of failed probes, and the check must come round) before wave ``k + 1``'s
    begins. The interval is therefore the shortest lead between successive waves less the health rule's minimum
    delay, never under ``bake_check_minutes`` nor over ``watch_interval_minutes``. One wave has no lead to keep:
    the policy's interval. ``wave_starts`` are the minutes at which each wave's VMs took the change.
    """
    starts = sorted(wave_starts)
    base = float(policy.watch_interval_minutes)
    if len(starts) < 2:
        return WatchCadence(interval_minutes=base, reason=f"production watched every {base:g} min: "
                            f"{len(starts)} wave, no lead between waves to keep")
    lead = min(b - a for a, b in pairwise(starts))
    delay = float(policy.unhealthy_probe_minutes)
    interval = max(float(policy.bake_check_minutes), min(base, lead - delay))
    return WatchCadence(interval_minutes=round(interval, 3), reason=(
        f"production watched every {interval:g} min: the shortest lead between successive waves is {lead:.1f} min; "
        f"a late onset on one wave is found before it reaches the next when the health rule's "
        f"{delay:g} min plus the interval fit in that lead (between {policy.bake_check_minutes:g} and "
        f"{base:g} min)"))
