"""The statistical judge behind the FailureModel port: every VM gets its stratum's evidence score."""

from __future__ import annotations

from ..domain.decisions import VmRisk
from ..domain.features import FeatureTable
from ..ports import FailureModel


class StatisticalFailureModel(FailureModel):
    name = "statistical-judge"

    def predict(self, table: FeatureTable) -> list[VmRisk]:
        return [VmRisk(vm, key, score, "judge")
                for vm, key, score in zip(table.vm_ids, table.stratum_keys, table.judge_scores, strict=True)]
