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
