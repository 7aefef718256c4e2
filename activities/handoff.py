"""Handoff activities: load the snapshot, decide (evaluate the gates once), apply the decision.

The decision and its application are two steps so that the verdict is recorded in the
workflow's history before anything is written: a retried application re-applies that verdict
and never evaluates the gates again (a plugin gate may give another answer the second time).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.accepted_handoff import find_accepted_handoff
from activities.agent_inputs import PreparedHandoff, prepare_agents
from activities.commit import (
    CommitDecisionInput,
    CommitOutcome,
    commit_decision,
    refusal_error,
    rejected_handoff_id,
)
from db.snapshots import read_snapshot_rows
from db.transitions import TransitionContext, TransitionResult, call_transition, record_rejection
from leo.domain.budget import BudgetExceededError, check_result_budget, check_sub_agent_count
from leo.domain.handoffs import HANDOFF_PHASE, HandoffType
from leo.domain.refusals import (
    PREFLIGHT_REFUSALS,
    FailureType,
    RefusalCode,
)
from leo.domain.snapshot import (
    HandoffRecord,
    HandoffSnapshot,
    PrdSnapshot,
    RetrospectiveRecord,
    SdSnapshot,
    StorySnapshot,
    SubAgentEvidence,
    SubAgentSpec,
)
from leo.domain.snapshot_budget import check_sd_rows, check_snapshot
from leo.domain.verdicts import AggregateVerdict, SubAgentResult, aggregate
from leo.gates.core import (
    GateContext,
    GateEvaluation,
    GateRegistry,
    bounded_gate_summary,
    evaluate_gates,
)
from leo.gates.trim import fit_evaluation
from leo.infra import metrics, telemetry
from leo.sub_agents.selection import select_sub_agents

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

# How long sub-agent evidence from earlier attempts counts (LEO_TESTING_MAX_AGE_HOURS).
EVIDENCE_MAX_AGE_HOURS = 24
# The transition functions' refusal codes (a refusal is counted and put on the span).
REFUSAL_CODES = frozenset(code.value for code in RefusalCode)
# SQLSTATEs of a transient conflict between transactions: nothing was applied, a retry may pass.
TRANSIENT_SQLSTATES = {"40P01": "deadlock detected", "40001": "serialization failure"}


class LoadSnapshotInput(BaseModel):
    handoff_type: HandoffType
    sd_id: str
    session_id: str | None = None
    extra_sub_agents: list[str] = Field(default_factory=list)
    # The handoff attempt (the run's start time); set by prepare_handoff's callers.
    attempt: str | None = None


class CommitHandoffInput(BaseModel):
    handoff_type: HandoffType
    snapshot: HandoffSnapshot
    sub_agents: list[SubAgentResult]
    request_id: str
    session_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class HandoffDecision(BaseModel):
    """What the gates decided, once per handoff attempt, and exactly what to apply: the
    transition context (request id, expected version, bounded gate summary) or the rejection."""

    model_config = ConfigDict(frozen=True)

    accepted: bool
    evaluation: GateEvaluation
    orchestration: AggregateVerdict
    context: TransitionContext


class ApplyDecisionInput(BaseModel):
    handoff_type: HandoffType
    sd_id: str
    prd_id: str | None = None
    session_id: str | None = None
    decision: HandoffDecision


class CommitHandoffResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    accepted: bool
    evaluation: GateEvaluation
    orchestration: AggregateVerdict
    transition: TransitionResult | None = None
    rejection_handoff_id: str | None = None


def transient_conflict(err: Exception, what: str) -> ApplicationError | None:
    """A deadlock or serialization failure as a retryable error that says so, else None."""
    sqlstate = getattr(err, "sqlstate", None)
    if sqlstate not in TRANSIENT_SQLSTATES:
        return None
    return ApplicationError(
        f"{what}: {TRANSIENT_SQLSTATES[sqlstate]} (SQLSTATE {sqlstate}); nothing was applied, "
        "retrying",
        {"sqlstate": sqlstate, "error": str(err)},
        type=FailureType.TRANSIENT_CONFLICT,
        next_retry_delay=timedelta(milliseconds=random.randint(50, 400)),
    )


@contextmanager
def budget_refusal() -> Iterator[None]:
    """A payload-budget refusal as a non-retryable failure of its own type (SD_TOO_LARGE,
    PAYLOAD_TOO_LARGE) whose message names the field and the limit."""
    try:
        yield
    except BudgetExceededError as exc:
        raise ApplicationError(str(exc), type=exc.code, non_retryable=True) from None


def preflight_request_id() -> str:
    info = activity.info()
    return f"preflight:{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}/{info.attempt}"


class HandoffActivities:
    """Activities bound to the worker's asyncpg pool and gate registry."""

    def __init__(self, pool: asyncpg.Pool, gates: GateRegistry) -> None:
        self._pool = pool
        self._gates = gates

    @activity.defn(name="load_handoff_snapshot")
    async def load_handoff_snapshot(self, request: LoadSnapshotInput) -> HandoffSnapshot:
        """One consistent read of everything the handoff decides on, after a dry run of the
        transition function so that a wrong phase or a foreign claim fails before any
        sub-agent runs."""
        async with self._pool.acquire() as conn:
            # Accepted before: return that record, whatever happened to the SD since.
            accepted = await find_accepted_handoff(conn, request.handoff_type, request.sd_id)
            if accepted is None:
                await self._preflight(conn, request)
            rows = await read_snapshot_rows(
                conn, request.sd_id, evidence_max_age_hours=EVIDENCE_MAX_AGE_HOURS
            )
        if rows is None:
            raise ApplicationError(
                f"SD not found: {request.sd_id}", type=RefusalCode.SD_NOT_FOUND, non_retryable=True
            )
        # Refused here, before any agent runs: an SD Temporal could not carry.
        with budget_refusal():
            check_sd_rows(
                dict(rows.sd),
                dict(rows.prd) if rows.prd else None,
                [dict(r) for r in rows.stories],
            )
        sd = SdSnapshot.model_validate(dict(rows.sd))
        phase = HANDOFF_PHASE[request.handoff_type]
        codes = select_sub_agents(phase, sd.sd_type, request.extra_sub_agents)
        with budget_refusal():
            check_sub_agent_count(len(codes))
        catalogue = {
            c: SubAgentSpec.from_row(rows.catalogue[c]) for c in codes if c in rows.catalogue
        }
        snapshot = HandoffSnapshot(
            handoff_type=request.handoff_type,
            phase=phase,
            sd=sd,
            prd=PrdSnapshot.model_validate(dict(rows.prd)) if rows.prd else None,
            stories=tuple(StorySnapshot.model_validate(dict(r)) for r in rows.stories),
            handoffs=tuple(HandoffRecord.model_validate(dict(r)) for r in rows.handoffs),
            evidence=tuple(SubAgentEvidence.model_validate(dict(r)) for r in rows.evidence),
            retrospectives=tuple(
                RetrospectiveRecord.model_validate(dict(r)) for r in rows.retrospectives
            ),
            sub_agents=tuple(
                catalogue[c] for c in codes if c in catalogue and catalogue[c].executor_kind
            ),
            missing_sub_agents=tuple(
                c for c in codes if c not in catalogue or not catalogue[c].executor_kind
            ),
            loaded_at=rows.now,
            already_accepted=accepted,
        )
        with budget_refusal():
            check_snapshot(snapshot)
        return snapshot

    @activity.defn(name="prepare_handoff")
    async def prepare_handoff(self, request: LoadSnapshotInput) -> PreparedHandoff:
        """The snapshot, plus each agent's keys and the results that need no run (recorded for
        this attempt, reusable on the same input, or a built-in rule): one more query."""
        snapshot = await self.load_handoff_snapshot(request)
        if snapshot.already_accepted is not None:
            return PreparedHandoff(snapshot=snapshot)
        attempt = request.attempt or str(activity.info().workflow_run_id)
        async with self._pool.acquire() as conn:
            return await prepare_agents(conn, snapshot, attempt)

    async def _preflight(self, conn: PoolConnectionProxy, request: LoadSnapshotInput) -> None:
        # The transition function is the one place its preconditions live, so ask it: run it
        # in a transaction that is always rolled back, and stop on a refusal no retry can fix.
        tx = conn.transaction()
        await tx.start()
        try:
            result = await call_transition(
                conn,
                request.handoff_type,
                sd_id=request.sd_id,
                session_id=request.session_id,
                # Unique per attempt: the function also locks the request id, and a shared
                # one would make dry runs on different SDs refuse each other.
                context=TransitionContext(request_id=preflight_request_id()),
            )
        finally:
            await tx.rollback()
        if not result.success:
            metrics.record_refusal(result.code.value)
        if not result.success and result.code in PREFLIGHT_REFUSALS:
            raise refusal_error(result)

    def _decide(self, request: CommitHandoffInput) -> HandoffDecision:
        orchestration = aggregate(request.sub_agents)
        ctx = GateContext(
            snapshot=request.snapshot,
            sub_agents=tuple(request.sub_agents),
            orchestration=orchestration,
        )
        evaluation = evaluate_gates(self._gates.gates(request.handoff_type), ctx)
        metadata = {
            **request.metadata,
            "sub_agents": {r.code: r.verdict.value for r in request.sub_agents},
        }
        context = TransitionContext(
            request_id=request.request_id,
            expected_version=request.snapshot.sd.transition_version,
            # Bounded, so that a verbose gate can neither make the transition refuse nor the
            # rejection go unrecorded (the handoff record holds at most 100 KB).
            gate_summary=bounded_gate_summary(evaluation.summary(orchestration.verdict.value)),
            metadata=metadata,
        )
        # The stored summary above is bounded on its own; the typed result gets the gates' share.
        evaluation = fit_evaluation(evaluation)
        # Before anything is applied: a run whose result Temporal could not carry must not
        # apply the transition and then wedge (the database and Temporal would disagree).
        with budget_refusal():
            check_result_budget(request.sub_agents, evaluation, orchestration, context)
        if not evaluation.passed:
            reason = (
                f"{evaluation.failed_gate}: {'; '.join(evaluation.issues)}"
                if evaluation.issues
                else f"gate {evaluation.failed_gate} failed"
            )
            context = context.model_copy(update={"rejection_reason": reason[:2000]})
        return HandoffDecision(
            accepted=evaluation.passed,
            evaluation=evaluation,
            orchestration=orchestration,
            context=context,
        )

    @activity.defn(name="evaluate_handoff_gates")
    async def evaluate_handoff_gates(self, request: CommitHandoffInput) -> HandoffDecision:
        """The gates' verdict over the snapshot, reached once per handoff attempt. Writes
        nothing; the workflow records the verdict in its history before applying it."""
        return self._decide(request)

    @activity.defn(name="apply_handoff_decision")
    async def apply_handoff_decision(self, request: ApplyDecisionInput) -> CommitHandoffResult:
        """Apply a recorded verdict: the atomic transition, or the rejection record. A retry
        (a lost reply) applies the same verdict; both calls are idempotent on request_id."""
        # The transition call's span: the SQL function's outcome and refusal code, per attempt.
        with telemetry.span(
            "leo.transition",
            {"leo.sd_id": request.sd_id, "leo.handoff_type": request.handoff_type.value},
        ) as span:
            decision = request.decision
            what = f"{request.handoff_type.value} for {request.sd_id}"
            try:
                if not decision.accepted:
                    recorded = await record_rejection(
                        self._pool,
                        request.handoff_type,
                        sd_id=request.sd_id,
                        session_id=request.session_id,
                        context=decision.context,
                    )
                    span.set_attribute("leo.outcome", "rejected")
                    return CommitHandoffResult(
                        accepted=False,
                        evaluation=decision.evaluation,
                        orchestration=decision.orchestration,
                        rejection_handoff_id=rejected_handoff_id(recorded, what),
                    )
                result = await call_transition(
                    self._pool,
                    request.handoff_type,
                    sd_id=request.sd_id,
                    prd_id=request.prd_id,
                    session_id=request.session_id,
                    context=decision.context,
                )
            except Exception as err:
                conflict = transient_conflict(err, what)
                if conflict is not None:
                    raise conflict from err
                raise
            if not result.success:
                span.set_attributes(
                    {"leo.outcome": "refused", "leo.refusal_code": result.code.value}
                )
                metrics.record_refusal(result.code.value)
                raise refusal_error(result)
            span.set_attribute("leo.outcome", "accepted")
            return CommitHandoffResult(
                accepted=True,
                evaluation=decision.evaluation,
                orchestration=decision.orchestration,
                transition=result,
            )

    @activity.defn(name="commit_handoff_decision")
    async def commit_handoff_decision(self, request: CommitDecisionInput) -> CommitOutcome:
        """Issue 13's apply step: the recorded verdict and every new result row, in one
        statement and one transaction. Takes only what it writes and returns only what it
        wrote: the decision itself is already in the workflow's history."""
        what = f"{request.handoff_type.value} for {request.sd_id}"
        # The transition call's span, as for apply_handoff_decision: outcome and refusal code.
        with telemetry.span(
            "leo.transition",
            {"leo.sd_id": request.sd_id, "leo.handoff_type": request.handoff_type.value},
        ) as span:
            try:
                outcome = await commit_decision(self._pool, request, what)
            except ApplicationError as err:
                if err.type in REFUSAL_CODES:
                    span.set_attributes({"leo.outcome": "refused", "leo.refusal_code": err.type})
                    metrics.record_refusal(err.type)
                raise
            except Exception as err:
                conflict = transient_conflict(err, what)
                if conflict is not None:
                    raise conflict from err
                raise
            span.set_attribute("leo.outcome", "accepted" if outcome.transition else "rejected")
            return outcome

    @activity.defn(name="commit_handoff")
    async def commit_handoff(self, request: CommitHandoffInput) -> CommitHandoffResult:
        """Decide and apply in one step: only for handoffs started before the patch
        `decide-once`, whose histories schedule this activity."""
        return await self.apply_handoff_decision(
            ApplyDecisionInput(
                handoff_type=request.handoff_type,
                sd_id=request.snapshot.sd.id,
                prd_id=request.snapshot.prd.id if request.snapshot.prd else None,
                session_id=request.session_id,
                decision=self._decide(request),
            )
        )
