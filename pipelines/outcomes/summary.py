"""The realised performance of a task and the check of its champion, as `radflow outcomes`
prints it and the nightly monitoring report shows it.

The bootstrap settings and the minimum come from the `outcomes` block of the task's policy
entry (mlflow/registered_models.yaml, read through pipelines/model_policy.py); a policy
without one still gets the table, with the defaults, and no check.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pipelines.model_policy import load_outcomes_policy
from pipelines.outcomes import realised
from pipelines.outcomes.realised import RealisedPerformance, SensitivityCheck

NO_OUTCOMES = "no outcomes imported yet for the screened exams of this task (radflow labels import)"


@dataclasses.dataclass(frozen=True)
class OutcomesSummary:
    """The table, the champion's check (None when there is no policy minimum or no screened
    version), and a note saying what was skipped."""

    model_name: str
    performance: RealisedPerformance
    check: SensitivityCheck | None
    note: str = ""

    @property
    def alert(self) -> bool:
        return self.check is not None and self.check.below

    def as_json(self) -> dict[str, Any]:
        return {**self.performance.as_json(), "model_name": self.model_name,
                "check": None if self.check is None else dataclasses.asdict(self.check),
                "alert": self.alert, "note": self.note}


def summarise(task: str = "mammo", model_version: str | None = None) -> OutcomesSummary:
    """Realised performance of every version of `task`, and the check of `model_version`
    (default: the version of the latest complete screening run).

    Raises:
        PermanentError: an unknown task; PolicyInvalid: a malformed `outcomes` block.
    """
    from pipelines.tasks import get_task

    definition = get_task(task)
    policy = load_outcomes_policy(definition.policy)
    settings = ((policy.resamples, policy.seed, policy.confidence) if policy else
                (realised.DEFAULT_RESAMPLES, realised.DEFAULT_SEED, realised.DEFAULT_CONFIDENCE))
    performance = realised.realised_performance(task, *settings)
    version = model_version or realised.latest_screened_version(task)
    check, notes = None, []
    if performance.outcomes == 0:
        notes.append(NO_OUTCOMES)
    elif policy is None:
        notes.append(f"policy models.{definition.policy} sets no outcomes minimum: nothing is checked")
    elif version is None:
        notes.append("no screened version to check")
    else:
        check = realised.check_sensitivity(performance, version, policy)
    return OutcomesSummary(definition.registered_model, performance, check, "; ".join(notes))
