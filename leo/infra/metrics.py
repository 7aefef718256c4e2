"""LEO's own metrics, recorded through the SDK's metric meter.

In workflow code the meter is `workflow.metric_meter()`, which records nothing while a
workflow replays and issues no command, so a count stays one per handoff however often its history is replayed.
Activities use `activity.metric_meter()`. Without a metrics runtime (leo.infra.telemetry) the SDK
drops what is recorded. The names and labels below are what the Prometheus endpoint exposes
and what deploy/grafana/leo-dashboard.json queries.
"""

from __future__ import annotations

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError, FailureError

from leo.domain.refusals import FailureType

HANDOFFS_TOTAL = "leo_handoffs_total"
HANDOFF_DURATION = "leo_handoff_duration_seconds"
GATE_SCORE = "leo_gate_score"
SUB_AGENT_DURATION = "leo_sub_agent_duration_seconds"
TRANSITION_REFUSALS_TOTAL = "leo_transition_refusals_total"
LIFECYCLES_TOTAL = "leo_lifecycles_total"
METRIC_NAMES = (
    HANDOFFS_TOTAL,
    HANDOFF_DURATION,
    GATE_SCORE,
    SUB_AGENT_DURATION,
    TRANSITION_REFUSALS_TOTAL,
    LIFECYCLES_TOTAL,
)


def handoff_outcome(err: BaseException) -> str:
    """The outcome of a handoff run that ended with `err`: a gate rejection, a refusal (the
    transition function or another domain error), another failure (an activity that timed
    out or ran out of retries), or a cancellation."""
    if isinstance(err, ApplicationError):
        return "rejected" if err.type == FailureType.HANDOFF_REJECTED else "refused"
    if isinstance(err, FailureError):
        return "failed"
    return "cancelled"


def record_handoff(handoff_type: str, outcome: str) -> None:
    """Workflow code: one finished handoff run, and its time from workflow start."""
    meter = workflow.metric_meter()
    meter.create_counter(HANDOFFS_TOTAL, "Handoff runs by type and outcome").add(
        1, {"handoff_type": handoff_type, "outcome": outcome}
    )
    elapsed = workflow.now() - workflow.info().start_time
    meter.create_histogram_float(
        HANDOFF_DURATION, "Handoff run time, workflow start to end", "s"
    ).record(elapsed.total_seconds(), {"handoff_type": handoff_type})


def record_gate_score(sd_type: str, score: float) -> None:
    """Workflow code: the normalized score (0-100) of a handoff that reached the gates."""
    workflow.metric_meter().create_histogram_float(
        GATE_SCORE, "Normalized gate scores (0-100)"
    ).record(score, {"sd_type": sd_type})


def record_lifecycle(outcome: str) -> None:
    """Workflow code: an SD-LIFECYCLE run ended (completed, expired, failed, ...)."""
    workflow.metric_meter().create_counter(LIFECYCLES_TOTAL, "SD lifecycles ended, by outcome").add(
        1, {"outcome": outcome}
    )


def record_sub_agent(code: str, verdict: str, seconds: float) -> None:
    """One sub-agent that really ran (a result reused from an earlier attempt is not counted)."""
    activity.metric_meter().create_histogram_float(
        SUB_AGENT_DURATION, "Sub-agent run time by agent and verdict", "s"
    ).record(seconds, {"code": code, "verdict": verdict})


def record_refusal(code: str) -> None:
    """A refusal a transition function returned (INVALID_PHASE, CONCURRENT_LOCK, ...), in the
    dry run before the sub-agents or in the commit; each attempt counts."""
    activity.metric_meter().create_counter(
        TRANSITION_REFUSALS_TOTAL, "Refusals returned by the transition functions, by code"
    ).add(1, {"code": code})
