"""Handoff activities: the snapshot step, and the gates' verdict committed.

Issue 19's shape (`prepare_handoff`, then `decide_and_commit_handoff`): both are local
activities, the first in the workflow's first task and the second in the task that sees the
last agent's result; the verdict is committed once, on the request id (activities/commit.py).
Histories recorded before ran the verdict as its own step (`evaluate_handoff_gates`) and applied
it in another (`commit_handoff_decision`, `apply_handoff_decision`, `commit_handoff`); those
activities stay registered so that such runs finish.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.agent_inputs import PreparedHandoff
from activities.commit import (
    CommitDecisionInput,
    CommitOutcome,
    commit_decision,
    commit_verdict,
    refusal_error,
    rejected_handoff_id,
)
from activities.decision import (
    ApplyDecisionInput,
    CommitHandoffInput,
    CommitHandoffResult,
    DecideAndCommitInput,
    HandoffDecision,
    LoadSnapshotInput,
    decide,
)
from activities.handoff_state import budget_error, read_handoff_state
from db.transitions import call_transition, record_rejection
from leo.domain.budget import BudgetExceededError
from leo.domain.handoffs import HandoffType
from leo.domain.refusals import FailureType, RefusalCode
from leo.domain.snapshot import HandoffSnapshot
from leo.gates.core import GateRegistry
from leo.infra import metrics, telemetry

__all__ = [
    "ApplyDecisionInput",
    "CommitHandoffInput",
    "CommitHandoffResult",
    "DecideAndCommitInput",
    "HandoffActivities",
    "HandoffDecision",
    "LoadSnapshotInput",
]

if TYPE_CHECKING:
    import asyncpg
    from opentelemetry import trace

# The transition functions' refusal codes (a refusal is counted and put on the span).
REFUSAL_CODES = frozenset(code.value for code in RefusalCode)
# SQLSTATEs of a transient conflict between transactions: nothing was applied, a retry may pass.
TRANSIENT_SQLSTATES = {"40P01": "deadlock detected", "40001": "serialization failure"}


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
def commit_span(handoff_type: HandoffType, sd_id: str, what: str) -> Iterator[trace.Span]:
    """The commit call's span (`leo.transition`, per attempt): a refusal the commit raises is
    counted and put on the span with its code; a deadlock or serialization failure is made a
    retryable TRANSIENT_CONFLICT. The caller sets `leo.outcome` when the commit returns."""
    with telemetry.span(
        "leo.transition", {"leo.sd_id": sd_id, "leo.handoff_type": handoff_type.value}
    ) as span:
        try:
            yield span
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


@contextmanager
def budget_refusal() -> Iterator[None]:
    """A payload-budget refusal as a non-retryable failure of its own type."""
    try:
        yield
    except BudgetExceededError as exc:
        raise budget_error(exc) from None


class HandoffActivities:
    """Activities bound to the worker's asyncpg pool and gate registry."""

    def __init__(self, pool: asyncpg.Pool, gates: GateRegistry) -> None:
        self._pool = pool
        self._gates = gates

    @activity.defn(name="load_handoff_snapshot")
    async def load_handoff_snapshot(self, request: LoadSnapshotInput) -> HandoffSnapshot:
        """One consistent read of everything the handoff decides on, after a check of the
        transition's preconditions so that a wrong phase or a foreign claim fails before any
        sub-agent runs. Only for histories recorded before the patch lean-handoff."""
        async with self._pool.acquire() as conn:
            return (await read_handoff_state(conn, request, None)).snapshot

    @activity.defn(name="prepare_handoff")
    async def prepare_handoff(self, request: LoadSnapshotInput) -> PreparedHandoff:
        """The snapshot, plus each agent's keys and the results that need no run (recorded for
        this attempt, reusable on the same input, or a built-in rule)."""
        attempt = request.attempt or str(activity.info().workflow_run_id)
        async with self._pool.acquire() as conn:
            return await read_handoff_state(conn, request, attempt)

    def _decide(self, request: CommitHandoffInput) -> HandoffDecision:
        with budget_refusal():
            return decide(self._gates, request)

    @activity.defn(name="decide_and_commit_handoff")
    async def decide_and_commit_handoff(self, request: DecideAndCommitInput) -> CommitHandoffResult:
        """Issue 19's last step: the gates' verdict over the snapshot and the agents' results,
        committed with every new result row in one statement. Idempotent on the request id: a
        repeat (a lost reply, a crashed worker) reports the verdict first committed."""
        commit = request.commit
        what = f"{commit.handoff_type.value} for {commit.snapshot.sd.id}"
        with commit_span(commit.handoff_type, commit.snapshot.sd.id, what) as span:
            decision = self._decide(commit)
            result = await commit_verdict(self._pool, request, decision, what)
            span.set_attribute("leo.outcome", "accepted" if result.accepted else "rejected")
            return result

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
        with commit_span(request.handoff_type, request.sd_id, what) as span:
            outcome = await commit_decision(self._pool, request, what)
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
