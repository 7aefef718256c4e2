"""The rows a handoff decides on: the SD, its PRD and stories, earlier handoffs, recent sub-agent
evidence, retrospectives, and the active sub-agent catalogue, from one snapshot.

`read_prepared_rows` is the snapshot step's one round trip (issue 19): `fn_prepare_handoff`
(db/functions/prepare_handoff.sql) returns those rows together with the accepted record, a
read-only precheck of the transition's precondition, and the results already recorded under
the caller's idempotency keys; native mode and adopt mode's schema leo both have it.
`read_snapshot_rows` and `read_accepted_handoff` are the same reads one query at a time (what
the function replaced; bench transitions compares the two).

Thin on purpose: the activity turns these rows into the frozen `HandoffSnapshot`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import TypeAlias

    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    # A row: an asyncpg Record, or a dict decoded from jsonb.
    Row: TypeAlias = Mapping[str, Any] | asyncpg.Record

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
# fn_prepare_handoff (db/functions/prepare_handoff.sql) applies the same conditions: keep them
# in step.
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
    sd: Row
    prd: Row | None
    stories: Sequence[Row]
    handoffs: Sequence[Row]
    evidence: Sequence[Row]
    retrospectives: Sequence[Row]
    # Every active catalogue row by code: a handful of rows, so the caller selects.
    catalogue: dict[str, Row]
    now: datetime


PREPARE_HANDOFF_SQL = (
    "SELECT fn_prepare_handoff(p_handoff_type => $1, p_sd_id => $2, p_session_id => $3, "
    "p_evidence_hours => $4, p_idempotency_keys => $5)"
)


@dataclass(frozen=True)
class PreparedRows:
    """What `fn_prepare_handoff` returned."""

    # The accepted record (ACCEPTED_HANDOFF_SQL's columns), or None.
    accepted: Row | None
    # What the transition would refuse now (its result object), or None; only without `accepted`.
    refusal: dict[str, Any] | None
    # None when there is no such SD.
    rows: SnapshotRows | None
    # Results recorded under the given idempotency keys, by key.
    recorded: dict[str, Row]


def _with_times(row: Mapping[str, Any], *names: str) -> dict[str, Any]:
    # jsonb carries times as ISO text (UTC: the function sets TimeZone); the rows carry datetimes.
    data = dict(row)
    for name in names:
        if isinstance(data.get(name), str):
            data[name] = datetime.fromisoformat(data[name])
    return data


async def read_prepared_rows(
    conn: asyncpg.Connection | PoolConnectionProxy,
    handoff_type: str,
    sd_ref: str,
    *,
    session_id: str | None,
    evidence_max_age_hours: int,
    idempotency_keys: Sequence[str] = (),
) -> PreparedRows:
    """One round trip: `fn_prepare_handoff`."""
    raw = await conn.fetchval(
        PREPARE_HANDOFF_SQL,
        handoff_type,
        sd_ref,
        session_id,
        evidence_max_age_hours,
        list(idempotency_keys),
    )
    rows = None
    if raw["sd"] is not None:
        sd_times = ("created_at", "updated_at", "completion_date")
        rows = SnapshotRows(
            sd=_with_times(raw["sd"], *sd_times),
            prd=_with_times(raw["prd"], "created_at", "updated_at") if raw["prd"] else None,
            stories=[
                _with_times(r, "created_at", "updated_at", "completed_at") for r in raw["stories"]
            ],
            handoffs=[_with_times(r, "created_at") for r in raw["handoffs"]],
            evidence=[_with_times(r, "created_at") for r in raw["evidence"]],
            retrospectives=[_with_times(r, "created_at") for r in raw["retrospectives"]],
            catalogue={r["code"]: r for r in raw["catalogue"]},
            now=datetime.fromisoformat(raw["now"]),
        )
    accepted = raw["accepted"]
    return PreparedRows(
        accepted=_with_times(accepted, "accepted_at") if accepted else None,
        refusal=raw["refusal"],
        rows=rows,
        recorded={r["idempotency_key"]: r for r in raw["recorded"]},
    )


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
) -> Row | None:
    """The newest accepted record of `handoff_type` for the SD, or None."""
    return await conn.fetchrow(ACCEPTED_HANDOFF_SQL, sd_ref, handoff_type)
