"""The held-out acceptance bar: a model validation chose gives way to the judge when it misses it."""

from __future__ import annotations

import json
from typing import Any

from shared.adapters.onnx_model import MODEL_DIR
from shared.learning.acceptance import accept, pending, with_acceptance
from shared.learning.selection import SECTION, with_selection_section


def _result(**over: float) -> dict[str, Any]:
    base: dict[str, Any] = {"roc_auc": 0.9, "judge_roc_auc": 0.8, "pr_auc": 0.9, "judge_pr_auc": 0.8,
                            "recall_at_precision_95": 0.7, "judge_recall_at_precision_95": 0.5,
                            "brier": 0.1, "judge_brier": 0.2, "observable": {"roc_auc": 0.96}}
    for k, v in over.items():
        if k == "observable":
            base["observable"] = {"roc_auc": v}
        else:
            base[k] = v
    return base


def _validated(choice: str) -> dict[str, Any]:
    figures = {"roc_auc": {"model": 0.9, "judge": 0.8, "difference": 0.1, "lower_bound": 0.02, "rounds": 400}}
    return {"model": choice, "why": f"on the validation families the {choice} wins", "figures": figures,
            "validation_scenarios": ["a.yaml"], "seeds": [1], "rows": 10, "rollouts": 2,
            "bootstrap": {"rounds": 400, "lower_quantile": 0.05, "unit": "rollout"}}


def test_a_model_at_least_as_good_as_the_judge_on_every_figure_passes() -> None:
    verdict = accept(_result())
    assert verdict.passed and verdict.shortfalls == []


def test_each_shortfall_is_named_with_its_numbers() -> None:
    verdict = accept(_result(pr_auc=0.7, brier=0.3, observable=0.94))
    assert not verdict.passed
    assert verdict.shortfalls == ["PR-AUC 0.700 < judge 0.800", "Brier 0.300 > judge 0.200",
                                  "observable ROC-AUC 0.940 < 0.95"]


def test_a_missed_bar_hands_a_validated_model_back_to_the_judge_and_says_why() -> None:
    out = with_acceptance(pending(_validated("model")), accept(_result(recall_at_precision_95=0.2)), "held", 1)
    assert out["model"] == "judge" and out["validation_choice"] == "model"
    assert "recall@P95 0.200 < judge 0.500" in out["why"]


def test_a_passed_bar_puts_the_validated_model_in_use_and_applying_it_twice_changes_nothing() -> None:
    once = with_acceptance(pending(_validated("model")), accept(_result()), "held", 1)
    assert once["model"] == "model"
    assert with_acceptance(once, accept(_result()), "held", 1) == once


def test_the_judge_chosen_on_validation_stays_whatever_the_bar_says() -> None:
    out = with_acceptance(pending(_validated("judge")), accept(_result()), "held", 1)
    assert out["model"] == "judge"


def test_a_fresh_validation_choice_keeps_the_judge_until_the_model_is_accepted() -> None:
    out = pending(_validated("model"))
    assert out["model"] == "judge" and "accept-model" in out["why"]


def test_the_shipped_card_shows_the_acceptance_figures_of_selection_json() -> None:
    selection = json.loads((MODEL_DIR / "selection.json").read_text())
    card = (MODEL_DIR / "README.md").read_text()
    acc = selection["acceptance"]
    assert card.split(SECTION, 1)[1] == with_selection_section(card, selection).split(SECTION, 1)[1]
    assert f"| PR-AUC | {acc['figures']['pr_auc']:.3f} | {acc['figures']['judge_pr_auc']:.3f} |" in card
    assert (selection["model"] == "model") == acc["passed"]
