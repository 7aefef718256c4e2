"""Issue 13's commit step: the recorded verdict applied (the atomic transition, or the rejection
record) and every new sub-agent result recorded, in one statement (`fn_commit_handoff`), so that
the results and the decision they justify are atomic together.

The input carries only what is written (the transition context and the rows) and the output
only what was written: the decision and the results are already in the workflow's history.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from temporalio.exceptions import ApplicationError

from activities.agent_inputs import SubAgentRecord
from db.sub_agent_results import commit_handoff
from db.transitions import TransitionContext, TransitionResult
from leo.domain.handoffs import HandoffType
from leo.domain.refusals import RETRYABLE_REFUSALS, FailureType

if TYPE_CHECKING:
    from db.pool import Executor


class CommitDecisionInput(BaseModel):
    handoff_type: HandoffType
    sd_id: str
    prd_id: str | None = None
    session_id: str | None = None
    phase: str
    accepted: bool
    context: TransitionContext
    sub_agent_results: list[SubAgentRecord] = Field(default_factory=list)


class CommitOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    transition: TransitionResult | None = None
    rejection_handoff_id: str | None = None


def rejected_handoff_id(recorded: dict[str, Any], what: str) -> str:
    """The id of the recorded rejection; a recorder that did not record is an error."""
    problem = None
    if not recorded.get("success"):
        problem = f"{recorded.get('code')}: {recorded.get('error')}"
    elif not recorded.get("handoff_id"):
        problem = "the recorder returned no handoff id"
    if problem is not None:
        raise ApplicationError(
            f"the rejection of {what} was not recorded: {problem}",
            recorded,
            type=FailureType.REJECTION_NOT_RECORDED,
            non_retryable=True,
        )
    return str(recorded["handoff_id"])


def refusal_error(result: TransitionResult) -> ApplicationError:
    details = result.model_dump(mode="json", exclude_none=True)
    if result.code in RETRYABLE_REFUSALS:
        # Retried by the activity's retry policy; jitter spreads out callers on a hot SD.
        return ApplicationError(
            result.error or "concurrent transition",
            details,
            type=result.code.value,
            next_retry_delay=timedelta(milliseconds=random.randint(50, 400)),
        )
    return ApplicationError(
        result.error or result.code.value, details, type=result.code.value, non_retryable=True
    )


async def commit_decision(conn: Executor, request: CommitDecisionInput, what: str) -> CommitOutcome:
    raw = await commit_handoff(
        conn,
        handoff_type=request.handoff_type.value,
        sd_id=request.sd_id,
        accepted=request.accepted,
        phase=request.phase,
        results=[r.model_dump(mode="json") for r in request.sub_agent_results],
        prd_id=request.prd_id,
        session_id=request.session_id,
        context=request.context.model_dump(mode="json", exclude_none=True),
    )
    if not request.accepted:
        return CommitOutcome(rejection_handoff_id=rejected_handoff_id(raw, what))
    result = TransitionResult.model_validate(raw)
    if not result.success:
        raise refusal_error(result)
    # What the workflow's result uses; the rest of the record is in the audit row.
    return CommitOutcome(transition=result)
