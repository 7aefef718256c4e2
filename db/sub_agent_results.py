"""Sub-agent result rows (`sub_agent_execution_results`), keyed by their idempotency key.

A result is looked up before an agent runs and inserted once after: `ON CONFLICT DO NOTHING`
on the UNIQUE key makes a racing second attempt record nothing, and the caller then reads the
row that won.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg

    from db.pool import Executor

INSERT_RESULT = """
INSERT INTO sub_agent_execution_results (
    idempotency_key, sd_id, sub_agent_code, sub_agent_name, phase, verdict, confidence,
    critical_issues, warnings, recommendations, detailed_analysis, execution_time,
    justification, conditions, metadata)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id
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
