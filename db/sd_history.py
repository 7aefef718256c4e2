"""Where an SD stands and what happened to it: status with claim and latest handoffs, and the
transition audit trail. Read models of `leo status`, `leo audit` and `LeoClient.sd_status`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, Field

from db.pool import Executor
from db.sd_updates import SdChangeRecord, list_sd_changes
from db.sds import Record, get_sd


class ClaimRecord(Record):
    """A session's claim on an SD, from `v_active_sessions` (stale after 300 s of silence)."""

    session_id: str
    track: str | None
    status: str
    computed_status: str
    heartbeat_at: datetime
    heartbeat_age_seconds: int
    claimed_at: datetime | None


class HandoffRecord(Record):
    id: UUID
    handoff_type: str
    from_phase: str
    to_phase: str
    status: str
    validation_score: float | None
    validation_passed: bool | None
    request_id: str
    session_id: str | None
    rejection_reason: str | None
    created_at: datetime
    accepted_at: datetime | None
    rejected_at: datetime | None
    # Who wrote the record: the database login (session_user; None before migration 0011) and,
    # for a BYPASS-COMPLETION, the actor it names and its reason.
    db_role: str | None = None
    actor: str | None = None
    bypass_reason: str | None = None

    @property
    def is_bypass(self) -> bool:
        """A BYPASS-COMPLETION: the SD was completed without its gates, never a gated acceptance."""
        return self.handoff_type == "BYPASS-COMPLETION"


class SdStatus(Record):
    sd_id: str
    sd_key: str
    title: str
    sd_type: str
    status: str
    current_phase: str
    transition_version: int
    progress_percentage: int
    is_working_on: bool
    claiming_session_id: str | None
    claim: ClaimRecord | None
    handoffs: list[HandoffRecord] = Field(description="newest first")


def _as_handoff_name(stored: str) -> str:
    # Users see one spelling of a handoff everywhere (LEAD-TO-PLAN); the column keeps LEO's.
    return stored.replace("_", "-")


class AuditEntry(Record):
    """One `sd_transition_audit` row: a transition attempt, completed or failed.

    `transition_type` is spelt as users see handoffs everywhere (LEAD-TO-PLAN); the stored
    column keeps LEO's LEAD_TO_PLAN."""

    id: UUID
    transition_type: Annotated[str, AfterValidator(_as_handoff_name)]
    status: str
    request_id: str
    session_id: str | None
    handoff_id: UUID | None
    started_at: datetime
    completed_at: datetime | None
    pre_state: dict[str, Any]
    post_state: dict[str, Any] | None
    error_details: dict[str, Any] | None
    # The database login (session_user; None before migration 0011) and, for a
    # BYPASS-COMPLETION, the actor it names and its reason.
    db_role: str | None = None
    actor: str | None = None
    bypass_reason: str | None = None


class AuditTrail(Record):
    sd_id: str
    sd_key: str
    entries: list[AuditEntry] = Field(description="oldest first")
    edits: list[SdChangeRecord] = Field(
        default_factory=list, description="content edits (leo sd update), oldest first"
    )


async def get_claim(conn: Executor, sd_id: str) -> ClaimRecord | None:
    """The newest active claim on the SD, live or stale."""
    row = await conn.fetchrow(
        "SELECT session_id, track, status, computed_status, heartbeat_at, heartbeat_age_seconds, "
        "claimed_at FROM v_active_sessions WHERE sd_id = $1 AND status = 'active' "
        "ORDER BY heartbeat_at DESC LIMIT 1",
        sd_id,
    )
    return None if row is None else ClaimRecord.model_validate(dict(row))


async def get_latest_handoffs(conn: Executor, sd_id: str, limit: int) -> list[HandoffRecord]:
    rows = await conn.fetch(
        "SELECT id, handoff_type, from_phase, to_phase, status, validation_score, "
        "validation_passed, request_id, session_id, rejection_reason, created_at, accepted_at, "
        "rejected_at, db_role, actor, CASE WHEN handoff_type = 'BYPASS-COMPLETION' "
        "THEN metadata ->> 'reason' END AS bypass_reason FROM sd_phase_handoffs WHERE sd_id = $1 "
        "ORDER BY created_at DESC, id DESC LIMIT $2",
        sd_id,
        limit,
    )
    return [HandoffRecord.model_validate(dict(row)) for row in rows]


async def get_audit_entries(conn: Executor, sd_id: str) -> list[AuditEntry]:
    rows = await conn.fetch(
        "SELECT id, transition_type, status, request_id, session_id, handoff_id, started_at, "
        "completed_at, pre_state, post_state, error_details, db_role, actor, "
        "CASE WHEN transition_type = 'BYPASS_COMPLETION' THEN result ->> 'reason' END "
        "AS bypass_reason FROM sd_transition_audit "
        "WHERE sd_id = $1 ORDER BY started_at, completed_at NULLS LAST, id",
        sd_id,
    )
    return [AuditEntry.model_validate(dict(row)) for row in rows]


async def get_sd_status(conn: Executor, ref: str, *, handoff_limit: int = 10) -> SdStatus | None:
    """Phase, version, the live or stale claim and the latest handoffs; None for an unknown SD."""
    sd = await get_sd(conn, ref)
    if sd is None:
        return None
    return SdStatus(
        sd_id=sd.id,
        sd_key=sd.sd_key,
        title=sd.title,
        sd_type=sd.sd_type,
        status=sd.status,
        current_phase=sd.current_phase,
        transition_version=sd.transition_version,
        progress_percentage=sd.progress_percentage,
        is_working_on=sd.is_working_on,
        claiming_session_id=sd.claiming_session_id,
        claim=await get_claim(conn, sd.id),
        handoffs=await get_latest_handoffs(conn, sd.id, handoff_limit),
    )


async def get_audit_trail(conn: Executor, ref: str) -> AuditTrail | None:
    """Every transition attempt on the SD, oldest first, failed ones with their error record,
    and the edits of its content (`leo sd update`)."""
    sd = await get_sd(conn, ref)
    if sd is None:
        return None
    return AuditTrail(
        sd_id=sd.id,
        sd_key=sd.sd_key,
        entries=await get_audit_entries(conn, sd.id),
        edits=await list_sd_changes(conn, sd.id),
    )
