"""The SD-LIFECYCLE's database calls: where an SD stands, its session claim, EXEC's report,
LEAD's decision.

One statement each, values bound; the claim and report rules live in `functions/claims.sql`
and `functions/exec_report.sql`. Functions return the jsonb those SQL functions return.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg

    from db.pool import Executor

# SQLSTATE of a call to a function the schema does not have.
UNDEFINED_FUNCTION = "42883"

SD_STATE_SQL = (
    "SELECT id, sd_key, sd_type, status, current_phase, transition_version "
    "FROM strategic_directives_v2 WHERE id = leo_resolve_sd_id($1)"
)
# The newest accepted record of each handoff type (a BYPASS-COMPLETION is not one).
ACCEPTED_HANDOFFS_SQL = (
    "SELECT DISTINCT ON (handoff_type) handoff_type, "
    "validation_score::float8 AS validation_score, id::text AS handoff_id, accepted_at "
    "FROM sd_phase_handoffs WHERE sd_id = $1 AND status = 'accepted' "
    "AND handoff_type <> 'BYPASS-COMPLETION' ORDER BY handoff_type, created_at DESC"
)
# The SD's BYPASS-COMPLETION, if an operator completed it without its gates.
BYPASS_SQL = (
    "SELECT id::text AS handoff_id, actor, db_role, metadata ->> 'reason' AS reason, "
    "from_phase, accepted_at FROM sd_phase_handoffs "
    "WHERE sd_id = $1 AND handoff_type = 'BYPASS-COMPLETION' ORDER BY created_at DESC LIMIT 1"
)


async def read_sd_state(
    conn: Executor, sd_ref: str
) -> tuple[asyncpg.Record, list[asyncpg.Record]] | None:
    """The SD named by id or sd_key and its accepted handoffs; None when there is no such SD."""
    row = await conn.fetchrow(SD_STATE_SQL, sd_ref)
    if row is None:
        return None
    return row, await conn.fetch(ACCEPTED_HANDOFFS_SQL, row["id"])


async def read_bypass(conn: Executor, sd_id: str) -> asyncpg.Record | None:
    """The SD's BYPASS-COMPLETION record (canonical id), or None."""
    return await conn.fetchrow(BYPASS_SQL, sd_id)


async def claim_sd(conn: Executor, sd_id: str, session_id: str) -> dict[str, Any]:
    raw: dict[str, Any] = await conn.fetchval(
        "SELECT claim_sd(p_sd_id => $1, p_session_id => $2)", sd_id, session_id
    )
    return raw


async def heartbeat_sd_claim(
    conn: Executor, session_id: str, sd_id: str | None = None
) -> dict[str, Any]:
    """Refresh the session's claim; with `sd_id`, only a claim on that SD."""
    if sd_id is None:
        raw: dict[str, Any] = await conn.fetchval(
            "SELECT heartbeat_sd_claim(p_session_id => $1)", session_id
        )
    else:
        try:
            raw = await conn.fetchval(
                "SELECT heartbeat_sd_claim(p_session_id => $1, p_sd_id => $2)", session_id, sd_id
            )
        except Exception as err:
            if getattr(err, "sqlstate", None) != UNDEFINED_FUNCTION:
                raise
            # A schema without the per-SD heartbeat (one adopted before it had it): by session.
            return await heartbeat_sd_claim(conn, session_id)
    return raw


async def release_sd(conn: Executor, session_id: str, reason: str) -> dict[str, Any]:
    raw: dict[str, Any] = await conn.fetchval(
        "SELECT release_sd(p_session_id => $1, p_reason => $2)", session_id, reason
    )
    return raw


async def record_exec_report(
    conn: Executor,
    *,
    sd_id: str,
    session_id: str | None,
    request_id: str,
    summary: str,
    evidence: dict[str, Any],
) -> dict[str, Any]:
    raw: dict[str, Any] = await conn.fetchval(
        "SELECT fn_record_exec_report(p_sd_id => $1, p_session_id => $2, p_request_id => $3, "
        "p_summary => $4, p_evidence => $5)",
        sd_id,
        session_id,
        request_id,
        summary,
        evidence,
    )
    return raw


async def record_lead_decision(
    conn: Executor,
    *,
    sd_id: str,
    session_id: str | None,
    request_id: str,
    decision: str,
    approver: str,
    reason: str,
) -> dict[str, Any]:
    raw: dict[str, Any] = await conn.fetchval(
        "SELECT fn_record_lead_decision(p_sd_id => $1, p_session_id => $2, p_request_id => $3, "
        "p_decision => $4, p_approver => $5, p_reason => $6)",
        sd_id,
        session_id,
        request_id,
        decision,
        approver,
        reason,
    )
    return raw


async def read_metadata_for_report(conn: Executor, sd_ref: str, request_id: str) -> Any:
    """The SD's metadata, which EXEC's report would add its commits to; None when the report
    is already recorded (a retry) or the SD does not exist (the function says which)."""
    return await conn.fetchval(
        "SELECT metadata FROM strategic_directives_v2 WHERE id = leo_resolve_sd_id($1) "
        "AND NOT EXISTS (SELECT 1 FROM sd_exec_reports WHERE request_id = $2)",
        sd_ref,
        request_id,
    )
