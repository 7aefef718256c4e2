"""Handoff activities: load the snapshot, then evaluate the gates and commit the transition."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.snapshots import read_snapshot_rows
from db.transitions import TransitionContext, TransitionResult, call_transition, record_rejection
from leo.domain.handoffs import HANDOFF_PHASE, HandoffType
from leo.domain.refusals import PREFLIGHT_REFUSALS, RETRYABLE_REFUSALS, RefusalCode
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
from leo.domain.verdicts import AggregateVerdict, SubAgentResult, aggregate
from leo.gates.core import GateContext, GateEvaluation, GateRegistry, evaluate_gates
from leo.sub_agents.selection import select_sub_agents

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

# How long sub-agent evidence from earlier attempts counts (LEO_TESTING_MAX_AGE_HOURS).
EVIDENCE_MAX_AGE_HOURS = 24


class LoadSnapshotInput(BaseModel):
    handoff_type: HandoffType
    sd_id: str
    session_id: str | None = None
    extra_sub_agents: list[str] = Field(default_factory=list)


class CommitHandoffInput(BaseModel):
    handoff_type: HandoffType
    snapshot: HandoffSnapshot
    sub_agents: list[SubAgentResult]
    request_id: str
    session_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class CommitHandoffResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    accepted: bool
    evaluation: GateEvaluation
    orchestration: AggregateVerdict
    transition: TransitionResult | None = None
    rejection_handoff_id: str | None = None


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
            await self._preflight(conn, request)
            rows = await read_snapshot_rows(
                conn, request.sd_id, evidence_max_age_hours=EVIDENCE_MAX_AGE_HOURS
            )
        if rows is None:
            raise ApplicationError(
                f"SD not found: {request.sd_id}", type=RefusalCode.SD_NOT_FOUND, non_retryable=True
            )
        sd = SdSnapshot.model_validate(dict(rows.sd))
        phase = HANDOFF_PHASE[request.handoff_type]
        codes = select_sub_agents(phase, sd.sd_type, request.extra_sub_agents)
        catalogue = {
            c: SubAgentSpec.from_row(rows.catalogue[c]) for c in codes if c in rows.catalogue
        }
        return HandoffSnapshot(
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
        )

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
        if not result.success and result.code in PREFLIGHT_REFUSALS:
            raise refusal_error(result)

    @activity.defn(name="commit_handoff")
    async def commit_handoff(self, request: CommitHandoffInput) -> CommitHandoffResult:
        """Evaluate the gates over the snapshot, then apply the transition atomically (or record
        the rejection). Idempotent on request_id: a retry returns the first outcome."""
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
            gate_summary=evaluation.summary(orchestration.verdict.value),
            metadata=metadata,
        )
        if not evaluation.passed:
            reason = (
                f"{evaluation.failed_gate}: {'; '.join(evaluation.issues)}"
                if evaluation.issues
                else f"gate {evaluation.failed_gate} failed"
            )
            recorded = await record_rejection(
                self._pool,
                request.handoff_type,
                sd_id=request.snapshot.sd.id,
                session_id=request.session_id,
                context=context.model_copy(update={"rejection_reason": reason[:2000]}),
            )
            return CommitHandoffResult(
                accepted=False,
                evaluation=evaluation,
                orchestration=orchestration,
                rejection_handoff_id=str(recorded.get("handoff_id")),
            )
        result = await call_transition(
            self._pool,
            request.handoff_type,
            sd_id=request.snapshot.sd.id,
            prd_id=request.snapshot.prd.id if request.snapshot.prd else None,
            session_id=request.session_id,
            context=context,
        )
        if not result.success:
            raise refusal_error(result)
        return CommitHandoffResult(
            accepted=True, evaluation=evaluation, orchestration=orchestration, transition=result
        )
