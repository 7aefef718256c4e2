"""PLAN-TO-EXEC and EXEC-TO-PLAN refuse a PRD that is on hold, rejected or cancelled."""

from __future__ import annotations

import asyncpg
import pytest

from tests.support.db import assert_refused_without_writes, call, context
from tests.support.factories import create_sd


@pytest.mark.parametrize("handoff", ["PLAN-TO-EXEC", "EXEC-TO-PLAN"])
@pytest.mark.parametrize("prd_status", ["on_hold", "rejected", "cancelled"])
async def test_handoff_refuses_a_closed_prd_naming_its_status(
    db_pool: asyncpg.Pool, handoff: str, prd_status: str
) -> None:
    sd = await create_sd(db_pool, ready_for=handoff, stories=[{"status": "in_progress"}])
    await db_pool.execute(
        "UPDATE product_requirements_v2 SET status = $2 WHERE id = $1", sd.prd_id, prd_status
    )

    result = await assert_refused_without_writes(db_pool, handoff, sd, "INVALID_PRD_STATUS")

    assert f"the PRD is {prd_status}" in result["error"]
    assert sd.prd_id is not None and sd.prd_id in result["error"]
    assert result["prd_status"] == prd_status
    status = await db_pool.fetchval(
        "SELECT status FROM product_requirements_v2 WHERE id = $1", sd.prd_id
    )
    assert status == prd_status


async def test_an_open_prd_status_still_transitions(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for="PLAN-TO-EXEC")
    await db_pool.execute(
        "UPDATE product_requirements_v2 SET status = 'approved' WHERE id = $1", sd.prd_id
    )
    result = await call(db_pool, "PLAN-TO-EXEC", sd.id, context())
    assert result["success"] is True, result
