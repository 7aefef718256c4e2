"""The rows a handoff decides on, read in one consistent (repeatable-read, read-only)
transaction: the SD, its PRD and stories, earlier handoffs, recent sub-agent evidence,
retrospectives, and the active sub-agent catalogue.

Thin on purpose: the activity turns these rows into the frozen `HandoffSnapshot`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

SD_SQL = "SELECT * FROM strategic_directives_v2 WHERE id = leo_resolve_sd_id($1)"
PRD_SQL = "SELECT * FROM product_requirements_v2 WHERE sd_id = $1"
STORIES_SQL = "SELECT * FROM user_stories WHERE sd_id = $1 ORDER BY story_key"
# The newest accepted record of each handoff type, looked up directly (the prerequisite gates
# need it however many rejected rows came after), plus the 50 newest rows of any status.
HANDOFFS_SQL = (
    "(SELECT DISTINCT ON (handoff_type) handoff_type, status, "
    "validation_score::float8 AS validation_score, created_at FROM sd_phase_handoffs "
    "WHERE sd_id = $1 AND status = 'accepted' ORDER BY handoff_type, created_at DESC) "
    "UNION (SELECT handoff_type, status, validation_score::float8, created_at "
    "FROM sd_phase_handoffs WHERE sd_id = $1 ORDER BY created_at DESC LIMIT 50) "
    "ORDER BY created_at DESC"
)
# The newest result per agent and phase within the evidence window ($2 hours): evidence counts
# only in its own phase.
EVIDENCE_SQL = (
    "SELECT DISTINCT ON (sub_agent_code, phase) sub_agent_code, phase, verdict, confidence, "
    "created_at FROM sub_agent_execution_results "
    "WHERE sd_id = $1 AND created_at > now() - make_interval(hours => $2) "
    "ORDER BY sub_agent_code, phase, created_at DESC"
)
# This handoff's accepted record for the SD named by id or sd_key, with its audit row's result:
# only one the orchestrator gated (issue 20). That is a record its transition completed (the
# audit row of the same request), whose stored gate summary passed, and whose request id is
# the `<workflow id>/<run id>` of the handoff workflow of this SD that committed it. A record
# made by hand (a transition called without gates) or a BYPASS-COMPLETION is never returned as
# an accepted handoff.
ACCEPTED_HANDOFF_SQL = (
    "SELECT h.id::text AS handoff_id, a.id::text AS audit_id, h.request_id, "
    "h.validation_score::float8 AS validation_score, h.validation_details, h.metadata, "
    "h.accepted_at, a.result FROM sd_phase_handoffs h "
    "JOIN sd_transition_audit a ON a.request_id = h.request_id AND a.status = 'completed' "
    "WHERE h.sd_id = leo_resolve_sd_id($1) AND h.handoff_type = $2 AND h.status = 'accepted' "
    "AND h.validation_passed AND h.validation_details -> 'passed' = 'true'::jsonb "
    "AND h.metadata ->> 'workflow_id' = $2 || ':' || h.sd_id "
    "AND h.request_id = (h.metadata ->> 'workflow_id') || '/' || (h.metadata ->> 'run_id') "
    "ORDER BY h.accepted_at DESC NULLS LAST, h.created_at DESC LIMIT 1"
)
RETROSPECTIVES_SQL = (
    "SELECT quality_score, created_at FROM retrospectives WHERE sd_id = $1 ORDER BY created_at"
)
CATALOGUE_SQL = (
    "SELECT code, name, priority, depends_on, timeout_seconds, executor_kind, executor_ref, "
    "metadata, env_passthrough, reuse_window_seconds, input_parts, reuse_fingerprint "
    "FROM leo_sub_agents "
    "WHERE active"
)


@dataclass(frozen=True)
class SnapshotRows:
    sd: asyncpg.Record
    prd: asyncpg.Record | None
    stories: list[asyncpg.Record]
    handoffs: list[asyncpg.Record]
    evidence: list[asyncpg.Record]
    retrospectives: list[asyncpg.Record]
    # Every active catalogue row by code: a handful of rows, so the caller selects.
    catalogue: dict[str, asyncpg.Record]
    now: datetime


async def read_snapshot_rows(
    conn: asyncpg.Connection | PoolConnectionProxy, sd_ref: str, *, evidence_max_age_hours: int
) -> SnapshotRows | None:
    """The SD named by id or sd_key and everything around it; None when there is no such SD."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        sd = await conn.fetchrow(SD_SQL, sd_ref)
        if sd is None:
            return None
        sd_id = sd["id"]
        return SnapshotRows(
            sd=sd,
            prd=await conn.fetchrow(PRD_SQL, sd_id),
            stories=await conn.fetch(STORIES_SQL, sd_id),
            handoffs=await conn.fetch(HANDOFFS_SQL, sd_id),
            evidence=await conn.fetch(EVIDENCE_SQL, sd_id, evidence_max_age_hours),
            retrospectives=await conn.fetch(RETROSPECTIVES_SQL, sd_id),
            catalogue={row["code"]: row for row in await conn.fetch(CATALOGUE_SQL)},
            now=await conn.fetchval("SELECT now()"),
        )


async def read_accepted_handoff(
    conn: asyncpg.Connection | PoolConnectionProxy, sd_ref: str, handoff_type: str
) -> asyncpg.Record | None:
    """The newest accepted record of `handoff_type` for the SD, or None."""
    return await conn.fetchrow(ACCEPTED_HANDOFF_SQL, sd_ref, handoff_type)
