"""fn_record_handoff_rejection: a rejection is recorded once, and only a rejection counts."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.support.db import call, context, new_request_id
from tests.support.factories import create_sd

REJECTED_SUMMARY: dict[str, Any] = {
    "passed": False,
    "normalized_score": 40,
    "threshold": 85,
    "failed_gate": "GATE_PRD_EXISTS",
}


async def record(pool: asyncpg.Pool, sd_id: str, handoff: str, request_id: str) -> dict[str, Any]:
    result = await pool.fetchval(
        "SELECT fn_record_handoff_rejection(p_sd_id => $1, p_handoff_type => $2, "
        "p_transition_context => $3)",
        sd_id,
        handoff,
        {"request_id": request_id, "gate_summary": REJECTED_SUMMARY, "rejection_reason": "no PRD"},
    )
    assert isinstance(result, dict)
    return result


async def test_a_repeated_rejection_returns_the_first_record(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for="PLAN-TO-EXEC")
    request_id = new_request_id()
    first = await record(db_pool, sd.id, "PLAN-TO-EXEC", request_id)
    second = await record(db_pool, sd.id, "PLAN-TO-EXEC", request_id)
    assert first["success"] and not first["idempotent_hit"]
    assert second == {**first, "idempotent_hit": True}


async def test_an_accepted_handoff_under_the_request_id_is_not_a_recorded_rejection(
    db_pool: asyncpg.Pool,
) -> None:
    # The transition accepted this request; recording a rejection for it must not "succeed"
    # by returning the accepted row's id.
    sd = await create_sd(db_pool, ready_for="PLAN-TO-EXEC")
    ctx = context()
    accepted = await call(db_pool, "PLAN-TO-EXEC", sd.id, ctx)
    assert accepted["success"] is True, accepted

    refused = await record(db_pool, sd.id, "PLAN-TO-EXEC", ctx["request_id"])

    assert refused["success"] is False
    assert refused["code"] == "INVALID_INPUT"
    assert "PLAN-TO-EXEC accepted" in refused["error"]
    statuses = await db_pool.fetch("SELECT status FROM sd_phase_handoffs WHERE sd_id = $1", sd.id)
    assert [r["status"] for r in statuses] == ["accepted"]
