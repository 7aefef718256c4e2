"""What only fn_atomic_exec_to_plan_transition does, against a real PostgreSQL (the contract every
transition function keeps is in test_transition_functions.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

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

HANDOFF = "EXEC-TO-PLAN"


async def test_exec_to_plan_completes_stories_and_moves_prd_and_sd_to_verification(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(
        db_pool,
        ready_for=HANDOFF,
        uuid_id=True,
        stories=[
            {
                "status": "in_progress",
                "e2e_test_path": "e2e/login.spec.ts",
                "e2e_test_status": "created",
            },
            {"status": "ready"},
            {"status": "blocked", "e2e_test_path": "e2e/blocked.spec.ts"},
            {"status": "completed"},
        ],
    )
    assert sd.prd_id is not None
    with_path, without_path, blocked, done = sd.story_keys
    # A story someone already completed keeps its provenance.
    stamped = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    await db_pool.execute(
        "UPDATE user_stories SET completed_by = 'alice', completed_at = $2 WHERE story_key = $1",
        done,
        stamped,
    )
    before = await snapshot(db_pool, sd.id)
    session = new_session_id()
    ctx = context()

    result = await call(db_pool, HANDOFF, sd.sd_key, ctx, session_id=session)

    assert result["success"] is True, result
    assert result["transition_version"] == 2
    assert result["stories_updated"] == 3
    stories = await story_rows(db_pool, sd.id)
    for key in (with_path, without_path, done):
        assert stories[key]["status"] == "completed"
        assert stories[key]["validation_status"] == "validated"
    # e2e passes only where a test exists; the others keep what they had.
    assert stories[with_path]["e2e_test_status"] == "passing"
    assert stories[without_path]["e2e_test_status"] == "not_created"
    assert stories[done]["e2e_test_status"] == "not_created"
    system = "system:fn_atomic_exec_to_plan_transition"
    assert stories[with_path]["completed_by"] == system
    assert stories[without_path]["completed_by"] == system
    assert stories[with_path]["completed_at"] is not None
    assert (stories[done]["completed_by"], stories[done]["completed_at"]) == ("alice", stamped)
    # A blocked story is left exactly as it was.
    assert stories[blocked] == before.stories[blocked]

    prd = await prd_row(db_pool, sd.prd_id)
    assert (prd["status"], prd["phase"]) == ("verification", "verification")
    sd_after = await sd_row(db_pool, sd.id)
    assert (sd_after["status"], sd_after["current_phase"]) == ("active", "EXEC_COMPLETE")
    assert sd_after["transition_version"] == 2
    assert sd_after["is_working_on"] is False
    assert sd_after["progress_percentage"] == 0

    assert result["pre_state"] == {
        "sd_id": sd.id,
        "sd_key": sd.sd_key,
        "sd_status": "active",
        "sd_phase": "EXEC",
        "sd_version": 1,
        "sd_progress": 0,
        "is_working_on": False,
        "claiming_session_id": None,
        "prd_id": sd.prd_id,
        "prd_status": "in_progress",
        "prd_phase": "planning",
        "stories": {"in_progress": 1, "ready": 1, "blocked": 1, "completed": 1},
    }
    assert result["post_state"] == {
        **result["pre_state"],
        "sd_phase": "EXEC_COMPLETE",
        "sd_version": 2,
        "prd_status": "verification",
        "prd_phase": "verification",
        "stories": {"completed": 3, "blocked": 1},
        "stories_updated": 3,
    }
    await assert_handoff_recorded(
        db_pool, HANDOFF, sd, result, ctx, from_phase="EXEC", to_phase="PLAN", session_id=session
    )


async def test_exec_to_plan_works_for_an_sd_without_stories(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for=HANDOFF)
    result = await call(db_pool, HANDOFF, sd.id, context())
    assert result["success"] is True, result
    assert result["stories_updated"] == 0
    assert result["post_state"]["stories"] == {}


async def test_exec_to_plan_refuses_an_sd_without_a_prd(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, status="active", phase="EXEC", stories=[{}])
    await assert_refuses_wrong_phase(
        db_pool,
        HANDOFF,
        sd,
        expected="active / EXEC with a PRD",
        actual_status="active",
        actual_phase="EXEC",
    )
