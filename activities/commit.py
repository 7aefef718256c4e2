"""The commit step: the verdict applied (the atomic transition, or the rejection record) and every
new sub-agent result recorded, in one statement (`fn_commit_handoff`), so that the results and
the decision they justify are atomic together, refusals included (a refused verdict leaves its
failed audit row).

Issue 19 (`commit_verdict`): the gates and the commit are one local activity, and "decided
once" rests on the database: the first verdict committed under a request id is the one applied
and reported. Issue 13 (`commit_decision`, histories before issue 19): the verdict was recorded
in history first, and this step got only the transition context and the rows.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from temporalio.exceptions import ApplicationError

from activities.agent_inputs import SubAgentRecord
from activities.decision import (
    CommitHandoffResult,
    DecideAndCommitInput,
    HandoffDecision,
    recorded_evaluation,
)
from db.sub_agent_results import commit_handoff
from db.transitions import TransitionContext, TransitionResult
from leo.domain.handoffs import HandoffType
from leo.domain.refusals import RETRYABLE_REFUSALS, FailureType, RefusalCode

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
    if isinstance(raw, dict):
        raw.pop("gate_summary", None)  # a repeat's stored summary: not carried in history
    if not request.accepted:
        return CommitOutcome(rejection_handoff_id=rejected_handoff_id(raw, what))
    result = TransitionResult.model_validate(raw)
    if not result.success:
        raise refusal_error(result)
    # What the workflow's result uses; the rest of the record is in the audit row.
    return CommitOutcome(transition=result)


# Refusals about the SD's state at commit time: the verdict stands, the SD moved. A rejection
# refused for one of these is a refusal too (VERSION_CONFLICT is judged again), not a recorder
# failure.
STATE_REFUSALS = frozenset(
    {
        RefusalCode.CONCURRENT_LOCK,
        RefusalCode.VERSION_CONFLICT,
        RefusalCode.CLAIMED_BY_OTHER_SESSION,
        RefusalCode.INVALID_PHASE,
        RefusalCode.INVALID_PRD_STATUS,
    }
)


async def commit_verdict(
    conn: Executor, request: DecideAndCommitInput, decision: HandoffDecision, what: str
) -> CommitHandoffResult:
    """Commit the verdict with the new result rows (`fn_commit_handoff`), and report what the
    database holds: the first verdict committed under the request id, which is this one unless
    an earlier attempt of this step committed first (a lost reply, a crashed worker)."""
    commit = request.commit
    snapshot = commit.snapshot
    raw = await commit_handoff(
        conn,
        handoff_type=commit.handoff_type.value,
        sd_id=snapshot.sd.id,
        accepted=decision.accepted,
        phase=snapshot.phase,
        results=[r.model_dump(mode="json") for r in request.sub_agent_results],
        prd_id=snapshot.prd.id if snapshot.prd else None,
        session_id=commit.session_id,
        context=decision.context.model_dump(mode="json", exclude_none=True),
    )
    if not isinstance(raw, dict):
        raise TypeError(f"fn_commit_handoff returned {raw!r} for {what}, not a result object")
    stored_summary = raw.pop("gate_summary", None)
    outcome = raw.get("decision")
    if outcome not in ("accepted", "rejected"):
        refused = TransitionResult.model_validate(raw)
        if decision.accepted or refused.code in STATE_REFUSALS:
            raise refusal_error(refused)
        rejected_handoff_id(raw, what)  # raises REJECTION_NOT_RECORDED, naming the cause
    evaluation = decision.evaluation
    if raw.get("idempotent_hit") and stored_summary:
        # Decided once: report the verdict the database holds, as it was first committed.
        evaluation = recorded_evaluation(stored_summary, snapshot.sd.sd_type)
    if outcome == "accepted":
        return CommitHandoffResult(
            accepted=True,
            evaluation=evaluation,
            orchestration=decision.orchestration,
            transition=TransitionResult.model_validate(raw),
        )
    return CommitHandoffResult(
        accepted=False,
        evaluation=evaluation,
        orchestration=decision.orchestration,
        rejection_handoff_id=rejected_handoff_id(raw, what),
    )
