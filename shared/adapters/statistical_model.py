"""The statistical judge behind the FailureModel port: every VM gets its stratum's evidence score."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..domain.decisions import VmRisk
from ..domain.judge import Phase, StratumVerdict
from ..domain.model import VmInfo
from ..ports import FailureModel


class StatisticalFailureModel(FailureModel):
    name = "statistical-judge"

    def predict(self, vms: Sequence[VmInfo], evidence: Mapping[str, StratumVerdict]) -> list[VmRisk]:
        out: list[VmRisk] = []
        for vm in vms:
            verdict = evidence.get(vm.stratum.key)
            p = verdict.score if verdict is not None and verdict.phase is not Phase.INCONCLUSIVE else None
            out.append(VmRisk(vm.vm_id, vm.stratum.key, p, "judge"))
        return out
