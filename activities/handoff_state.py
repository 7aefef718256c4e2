"""The snapshot step's reads: everything a handoff decides on, in one function.

`read_handoff_state` is the one place the snapshot step talks to PostgreSQL (the accepted
record, the precondition check, the consistent read of the SD and what surrounds it, and the
results already recorded for the agents); the rest of this module turns rows into the frozen
snapshot without I/O. Keys are computed in Python (activities/agent_inputs.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.accepted_handoff import find_accepted_handoff
from activities.agent_inputs import PreparedHandoff, prepare_agents
from activities.commit import refusal_error
from activities.decision import LoadSnapshotInput
from db.snapshots import SnapshotRows, read_snapshot_rows
from db.transitions import TransitionContext, call_transition
from leo.domain.budget import BudgetExceededError, check_sub_agent_count
from leo.domain.handoffs import HANDOFF_PHASE
from leo.domain.refusals import PREFLIGHT_REFUSALS, RefusalCode
from leo.domain.snapshot import (
    AcceptedRecord,
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
from leo.infra import metrics
from leo.sub_agents.selection import select_sub_agents

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

# How long sub-agent evidence from earlier attempts counts (LEO_TESTING_MAX_AGE_HOURS).
EVIDENCE_MAX_AGE_HOURS = 24


def budget_error(exc: BudgetExceededError) -> ApplicationError:
    """A payload-budget refusal as a non-retryable failure of its own type (SD_TOO_LARGE,
    PAYLOAD_TOO_LARGE) whose message names the field and the limit."""
    return ApplicationError(str(exc), type=exc.code, non_retryable=True)


def preflight_request_id() -> str:
    info = activity.info()
    return f"preflight:{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}/{info.attempt}"


async def preflight(
    conn: asyncpg.Connection | PoolConnectionProxy, request: LoadSnapshotInput
) -> None:
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


def build_snapshot(
    request: LoadSnapshotInput, rows: SnapshotRows, accepted: AcceptedRecord | None
) -> HandoffSnapshot:
    """The frozen snapshot from the rows; refuses an SD Temporal could not carry."""
    try:
        check_sd_rows(
            dict(rows.sd), dict(rows.prd) if rows.prd else None, [dict(r) for r in rows.stories]
        )
        sd = SdSnapshot.model_validate(dict(rows.sd))
        phase = HANDOFF_PHASE[request.handoff_type]
        codes = select_sub_agents(phase, sd.sd_type, request.extra_sub_agents)
        check_sub_agent_count(len(codes))
    except BudgetExceededError as exc:
        raise budget_error(exc) from None
    catalogue = {c: SubAgentSpec.from_row(rows.catalogue[c]) for c in codes if c in rows.catalogue}
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
    try:
        check_snapshot(snapshot)
    except BudgetExceededError as exc:
        raise budget_error(exc) from None
    return snapshot


async def read_handoff_state(
    conn: asyncpg.Connection | PoolConnectionProxy,
    request: LoadSnapshotInput,
    attempt: str | None,
) -> PreparedHandoff:
    """Every database read of the snapshot step: the accepted record (then nothing else), the
    precondition check, the consistent read, and (with an `attempt`) the agents' recorded or
    reusable results and the built-in rules' verdicts."""
    # Accepted before: return that record, whatever happened to the SD since.
    accepted = await find_accepted_handoff(conn, request.handoff_type, request.sd_id)
    if accepted is None:
        await preflight(conn, request)
    rows = await read_snapshot_rows(
        conn, request.sd_id, evidence_max_age_hours=EVIDENCE_MAX_AGE_HOURS
    )
    if rows is None:
        raise ApplicationError(
            f"SD not found: {request.sd_id}", type=RefusalCode.SD_NOT_FOUND, non_retryable=True
        )
    snapshot = build_snapshot(request, rows, accepted)
    if attempt is None or accepted is not None:
        return PreparedHandoff(snapshot=snapshot)
    return await prepare_agents(conn, snapshot, attempt)
