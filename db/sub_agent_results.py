"""Sub-agent result rows (`sub_agent_execution_results`), keyed by their idempotency key.

A result is looked up before an agent runs and inserted once after, by
`fn_record_sub_agent_result` (db/functions/sub_agent_result.sql, SECURITY DEFINER): its
`ON CONFLICT DO NOTHING` on the UNIQUE key makes a racing second attempt record nothing, and
the caller then reads the row that won.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg

    from db.pool import Executor

# Through a function that runs as its owner: the worker's role writes no table directly.
INSERT_RESULT = """
SELECT fn_record_sub_agent_result(
    p_idempotency_key => $1, p_sd_id => $2, p_sub_agent_code => $3, p_sub_agent_name => $4,
    p_phase => $5, p_verdict => $6, p_confidence => $7, p_critical_issues => $8,
    p_warnings => $9, p_recommendations => $10, p_detailed_analysis => $11,
    p_execution_time => $12, p_justification => $13, p_conditions => $14, p_metadata => $15)
"""
SELECT_RESULT = """
SELECT id, verdict, confidence, critical_issues, warnings, recommendations, detailed_analysis,
       execution_time::float8 AS execution_time, justification, conditions
FROM sub_agent_execution_results WHERE idempotency_key = $1
"""


async def find_result(conn: Executor, idempotency_key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_RESULT, idempotency_key)


async def insert_result(
    conn: Executor,
    *,
    idempotency_key: str,
    sd_id: str,
    code: str,
    name: str,
    phase: str,
    verdict: str,
    confidence: int,
    critical_issues: list[str],
    warnings: list[str],
    recommendations: list[str],
    detailed_analysis: Any,
    execution_time: float,
    justification: str | None,
    conditions: list[str] | None,
    metadata: dict[str, Any],
) -> Any:
    """The new row's id, or None when the key was already recorded."""
    return await conn.fetchval(
        INSERT_RESULT,
        idempotency_key,
        sd_id,
        code,
        name,
        phase,
        verdict,
        confidence,
        critical_issues,
        warnings,
        recommendations,
        detailed_analysis,
        execution_time,
        justification,
        conditions,
        metadata,
    )


# The results already recorded for this handoff attempt's keys, and, for agents with a reuse
# key, the newest non-ERROR result recorded under that key: the same canonical SD, phase, agent,
# time bucket, input and world fingerprint (activities/agent_inputs.py). One query for all
# agents. A row recorded under the attempt's own key wins over a reusable one. ERROR is never
# reused. An agent without a reuse key (a bucket width of 0, or a command agent without a
# world fingerprint) is never reused.
RECORDED_RESULTS = """
SELECT DISTINCT ON (k.code) k.code, r.id, r.verdict, r.confidence, r.critical_issues,
       r.warnings, r.recommendations, r.detailed_analysis,
       r.execution_time::float8 AS execution_time, r.justification, r.conditions,
       r.idempotency_key <> k.idempotency_key AS reused
FROM unnest($1::text[], $2::text[], $3::text[]) AS k(code, idempotency_key, reuse_key)
JOIN sub_agent_execution_results r
  ON r.idempotency_key = k.idempotency_key
  OR (k.reuse_key IS NOT NULL AND r.reuse_key = k.reuse_key AND r.verdict <> 'ERROR')
ORDER BY k.code, (r.idempotency_key = k.idempotency_key) DESC, r.created_at DESC
"""

COMMIT_HANDOFF = """
SELECT fn_commit_handoff(
    p_handoff_type => $1, p_sd_id => $2, p_accepted => $3, p_phase => $4,
    p_sub_agent_results => $5, p_prd_id => $6, p_session_id => $7,
    p_transition_context => $8)
"""


async def find_recorded_results(
    conn: Executor,
    codes: list[str],
    idempotency_keys: list[str],
    reuse_keys: list[str | None],
) -> list[asyncpg.Record]:
    return await conn.fetch(RECORDED_RESULTS, codes, idempotency_keys, reuse_keys)


async def commit_handoff(
    conn: Executor,
    *,
    handoff_type: str,
    sd_id: str,
    accepted: bool,
    phase: str,
    results: list[dict[str, Any]],
    prd_id: str | None,
    session_id: str | None,
    context: dict[str, Any],
) -> Any:
    """The transition (or the rejection record) and every new result row, in one statement."""
    return await conn.fetchval(
        COMMIT_HANDOFF,
        handoff_type,
        sd_id,
        accepted,
        phase,
        results,
        prd_id,
        session_id,
        context,
    )
