"""The snapshot step's reads: everything a handoff decides on, in one function.

`read_handoff_state` is the one place the snapshot step talks to PostgreSQL, in one round trip
(issue 19): `fn_prepare_handoff` returns the accepted record, a read-only precheck of the
transition's precondition, the consistent read of the SD and what surrounds it, and the results
already recorded under this attempt's keys. A second query asks only for agents that may reuse
an earlier result. The rest of this module turns rows into the frozen snapshot without I/O.
Keys are computed in Python (activities/agent_inputs.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.accepted_handoff import accepted_record, find_accepted_handoff
from activities.agent_inputs import PreparedHandoff, prepare_agents, sub_agent_idempotency_key
from activities.commit import refusal_error
from activities.decision import LoadSnapshotInput
from db.snapshots import SnapshotRows, read_prepared_rows, read_snapshot_rows
from db.transitions import TransitionContext, TransitionResult, call_transition
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
from leo.sub_agents.selection import possible_sub_agents, select_sub_agents

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

# How long sub-agent evidence from earlier attempts counts: the default of the original LEO's
# LEO_TESTING_MAX_AGE_HOURS (docs/leo-domain.md), a constant here, not a setting.
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


def sd_spellings(request: LoadSnapshotInput) -> tuple[str, ...]:
    """The SD ids this step may be about: the one it was given, and the one in the handoff's
    workflow id (`<HANDOFF>:<canonical SD id>`, which the workflow insists on)."""
    ids = [request.sd_id]
    if activity.in_activity():
        kind, _, sd_id = (activity.info().workflow_id or "").partition(":")
        if kind == request.handoff_type.value and sd_id and sd_id not in ids:
            ids.append(sd_id)
    return tuple(ids)


async def read_handoff_state(
    conn: asyncpg.Connection | PoolConnectionProxy,
    request: LoadSnapshotInput,
    attempt: str | None,
) -> PreparedHandoff:
    """Every database read of the snapshot step, in one round trip (`fn_prepare_handoff`): the
    accepted record (then nothing else), the precheck, the consistent read and (with an
    `attempt`) the results recorded under this attempt's keys; then the built-in rules'
    verdicts, and a second query only for agents that may reuse an earlier result."""
    phase = HANDOFF_PHASE[request.handoff_type]
    spellings = sd_spellings(request)
    # This attempt's keys for every agent it could run: the SD's type, and so the selection,
    # is not known before the read.
    keys = (
        [
            sub_agent_idempotency_key(sd_id, phase, code, attempt)
            for sd_id in spellings
            for code in possible_sub_agents(phase, request.extra_sub_agents)
        ]
        if attempt is not None
        else []
    )
    prepared = await read_prepared_rows(
        conn,
        request.handoff_type.value,
        request.sd_id,
        session_id=request.session_id,
        evidence_max_age_hours=EVIDENCE_MAX_AGE_HOURS,
        idempotency_keys=keys,
    )
    # Accepted before: return that record, whatever happened to the SD since.
    accepted = accepted_record(prepared.accepted) if prepared.accepted is not None else None
    if accepted is None and prepared.refusal is not None:
        refusal = TransitionResult.model_validate(prepared.refusal)
        metrics.record_refusal(refusal.code.value)
        if refusal.code in PREFLIGHT_REFUSALS:
            raise refusal_error(refusal)
    if prepared.rows is None:
        raise ApplicationError(
            f"SD not found: {request.sd_id}", type=RefusalCode.SD_NOT_FOUND, non_retryable=True
        )
    snapshot = build_snapshot(request, prepared.rows, accepted)
    if attempt is None or accepted is not None:
        return PreparedHandoff(snapshot=snapshot)
    # Keys made for another spelling than the SD's canonical id are no use: asked again.
    recorded = prepared.recorded if snapshot.sd.id in spellings else None
    return await prepare_agents(conn, snapshot, attempt, recorded)


async def read_handoff_state_step_by_step(
    conn: asyncpg.Connection | PoolConnectionProxy,
    request: LoadSnapshotInput,
    attempt: str | None,
) -> PreparedHandoff:
    """The same reads one query at a time, with a dry run of the transition as the precheck:
    what `fn_prepare_handoff` replaced, kept for bench transitions' comparison."""
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
