"""What only fn_atomic_plan_to_exec_transition does, against a real PostgreSQL (the contract every
transition function keeps is in test_transition_functions.py)."""

from __future__ import annotations

import asyncpg

from tests.support.contracts import CONTRACTS
from tests.support.db import (
    assert_handoff_recorded,
    assert_refuses_wrong_phase,
    call,
    context,
    new_session_id,
    prd_row,
    sd_row,
    snapshot,
    story_rows,
)
from tests.support.factories import create_sd

HANDOFF = "PLAN-TO-EXEC"
EXPECTED = CONTRACTS[HANDOFF].expected


async def test_plan_to_exec_hands_the_prd_to_exec_and_marks_the_sd_worked_on(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(
        db_pool, ready_for=HANDOFF, uuid_id=True, stories=[{"status": "ready"}, {"status": "draft"}]
    )
    assert sd.prd_id is not None
    before = await snapshot(db_pool, sd.id)
    session = new_session_id()
    ctx = context()

    # The caller names the PRD explicitly, as the orchestrator does.
    result = await call(db_pool, HANDOFF, sd.sd_key, ctx, prd_id=sd.prd_id, session_id=session)

    assert result["success"] is True, result
    assert result["transition_version"] == 2
    sd_after = await sd_row(db_pool, sd.id)
    assert sd_after["status"] == "active"
    assert sd_after["current_phase"] == "EXEC"
    assert sd_after["transition_version"] == 2
    assert sd_after["is_working_on"] is True
    assert sd_after["progress_percentage"] == 0
    prd = await prd_row(db_pool, sd.prd_id)
    assert prd["status"] == "in_progress"
    assert prd["phase"] == "exec"
    assert prd["updated_at"] > before.prd[0]["updated_at"]
    # Stories are not touched by this handoff.
    assert await story_rows(db_pool, sd.id) == before.stories

    assert result["pre_state"] == {
        "sd_id": sd.id,
        "sd_key": sd.sd_key,
        "sd_status": "in_progress",
        "sd_phase": "PLAN_PRD",
        "sd_version": 1,
        "sd_progress": 0,
        "is_working_on": False,
        "claiming_session_id": None,
        "prd_id": sd.prd_id,
        "prd_status": "draft",
        "prd_phase": "planning",
        "stories": {"ready": 1, "draft": 1},
    }
    assert result["post_state"] == {
        **result["pre_state"],
        "sd_status": "active",
        "sd_phase": "EXEC",
        "sd_version": 2,
        "is_working_on": True,
        "prd_status": "in_progress",
        "prd_phase": "exec",
    }
    await assert_handoff_recorded(
        db_pool, HANDOFF, sd, result, ctx, from_phase="PLAN", to_phase="EXEC", session_id=session
    )


async def test_plan_to_exec_refuses_an_sd_without_a_prd(db_pool: asyncpg.Pool) -> None:
    # Right SD phase, but there is nothing to hand to EXEC.
    sd = await create_sd(db_pool, status="in_progress", phase="PLAN_PRD")
    result = await assert_refuses_wrong_phase(
        db_pool,
        HANDOFF,
        sd,
        expected=EXPECTED,
        actual_status="in_progress",
        actual_phase="PLAN_PRD",
    )
    assert result["actual"]["prd_status"] is None
