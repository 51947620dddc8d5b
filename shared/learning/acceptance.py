"""The held-out acceptance bar a model must pass before a rollout trusts it over the judge.

``select-model`` compares the model with the judge on the validation families; those are few and mostly
fleet-wide, so a model can win there and still rank partial or late effects worse than the judge. The bar below is
issue 15's, fixed before the held-out families were scored: on ``bench/heldout-families`` at the benchmark seeds,
ROC-AUC, PR-AUC, recall at 95% precision and Brier each at least the judge's, and the observable rows' ROC-AUC at
least 0.95. The held-out families are only scored against this bar (pass or fail); nothing is fitted or tuned on
them, so the benchmark on them stays out of sample.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

OBSERVABLE_ROC_AUC_FLOOR = 0.95

# (figure, the model's key, the judge's key, higher is better)
_PAIRED = (("ROC-AUC", "roc_auc", "judge_roc_auc", True),
           ("PR-AUC", "pr_auc", "judge_pr_auc", True),
           ("recall@P95", "recall_at_precision_95", "judge_recall_at_precision_95", True),
           ("Brier", "brier", "judge_brier", False))


class Acceptance(BaseModel):
    """Whether the model passed, and each shortfall with its numbers."""

    passed: bool
    shortfalls: list[str]
    figures: dict[str, float]


def accept(result: dict[str, Any]) -> Acceptance:
    """The bar applied to an ``evaluate --json`` result on the held-out families."""
    shortfalls: list[str] = []
    figures: dict[str, float] = {}
    for name, mine, judge, higher in _PAIRED:
        m, j = float(result[mine]), float(result[judge])
        figures[mine], figures[judge] = m, j
        if (m < j) if higher else (m > j):
            shortfalls.append(f"{name} {m:.3f} {'<' if higher else '>'} judge {j:.3f}")
    observable = float(result["observable"]["roc_auc"])
    figures["observable_roc_auc"] = observable
    if observable < OBSERVABLE_ROC_AUC_FLOOR:
        shortfalls.append(f"observable ROC-AUC {observable:.3f} < {OBSERVABLE_ROC_AUC_FLOOR}")
    return Acceptance(passed=not shortfalls, shortfalls=shortfalls, figures=figures)


def with_acceptance(selection: dict[str, Any], acceptance: Acceptance, scenarios: str, seeds: int) -> dict[str, Any]:
    """The selection after the bar: a model chosen on validation that misses the bar gives way to the judge."""
    out = dict(selection)
    choice = str(selection.get("validation_choice", selection["model"]))
    validation_why = str(selection.get("validation_why", selection["why"]))
    out.update(validation_choice=choice, validation_why=validation_why,
               acceptance={"scenarios": scenarios, "seeds": seeds, **acceptance.model_dump()})
    if choice == "model" and not acceptance.passed:
        out["model"] = "judge"
        out["why"] = ("validation chose the model (" + validation_why.removeprefix("on the validation families ")
                      + "), but on the held-out families it misses the acceptance bar: "
                      + "; ".join(acceptance.shortfalls))
    else:
        out["model"] = choice
        out["why"] = validation_why + ("; it also passes the held-out acceptance bar" if choice == "model" else "")
    return out


def pending(selection: dict[str, Any]) -> dict[str, Any]:
    """A fresh validation choice: the judge stays in use until ``accept-model`` has scored the model."""
    out = {k: v for k, v in selection.items() if k != "acceptance"}
    out.update(validation_choice=selection["model"], validation_why=selection["why"])
    if selection["model"] == "model":
        out["model"] = "judge"
        out["why"] = ("validation chose the model (" + selection["why"].removeprefix("on the validation families ")
                      + "); the judge stays in use until `shadow-rollout accept-model` has scored it on the "
                      "held-out families")
    return out
