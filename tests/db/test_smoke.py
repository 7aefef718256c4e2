from __future__ import annotations

import asyncpg

from db.transitions import HandoffType, TransitionContext, call_transition
from tests.factories import create_sd


async def test_lead_to_plan_moves_a_draft_sd_to_plan_prd(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    result = await call_transition(
        db_pool, HandoffType.LEAD_TO_PLAN, sd_id=sd.sd_key, context=TransitionContext(request_id=sd.id)
    )
    assert result.success, result.error
    row = await db_pool.fetchrow(
        "SELECT status, current_phase, transition_version FROM strategic_directives_v2 WHERE id = $1",
        sd.id,
    )
    assert tuple(row) == ("in_progress", "PLAN_PRD", 2)
