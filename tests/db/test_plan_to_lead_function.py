"""What only fn_atomic_plan_to_lead_transition does, against a real PostgreSQL (the contract every
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

HANDOFF = "PLAN-TO-LEAD"
EXPECTED = CONTRACTS[HANDOFF].expected


async def test_plan_to_lead_finalises_stories_and_prd_and_hands_the_sd_to_lead(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(
        db_pool,
        ready_for=HANDOFF,
        uuid_id=True,
        stories=[
            {"status": "completed"},
            {"status": "testing", "e2e_test_path": "e2e/a.spec.ts", "e2e_test_status": "passing"},
            {"status": "blocked"},
        ],
    )
    assert sd.prd_id is not None
    verified, testing, blocked = sd.story_keys
    await db_pool.execute(
        "UPDATE user_stories SET validation_status = 'validated', completed_by = 'bob', "
        "completed_at = now() WHERE story_key = $1",
        verified,
    )
    before = await snapshot(db_pool, sd.id)
    session = new_session_id()
    ctx = context()

    result = await call(db_pool, HANDOFF, sd.sd_key, ctx, session_id=session)

    assert result["success"] is True, result
    assert result["transition_version"] == 2
    # Only the stories that were not yet completed and validated are written, and a blocked
    # story stays blocked: LEAD-FINAL-APPROVAL's USER_STORIES_COMPLETE must see it.
    assert result["stories_updated"] == 1
    stories = await story_rows(db_pool, sd.id)
    for key in (verified, testing):
        assert stories[key]["status"] == "completed"
        assert stories[key]["validation_status"] == "validated"
    assert stories[verified] == before.stories[verified]
    assert stories[testing]["e2e_test_status"] == "passing"
    assert stories[testing]["completed_by"] == "system:fn_atomic_plan_to_lead_transition"
    assert stories[blocked] == before.stories[blocked]
    assert (stories[blocked]["status"], stories[blocked]["validation_status"]) == (
        "blocked",
        "pending",
    )

    prd = await prd_row(db_pool, sd.prd_id)
    assert (prd["status"], prd["phase"], prd["progress"]) == ("completed", "LEAD_APPROVAL", 100)
    sd_after = await sd_row(db_pool, sd.id)
    assert (sd_after["status"], sd_after["current_phase"]) == ("pending_approval", "LEAD_FINAL")
    assert sd_after["transition_version"] == 2
    assert sd_after["is_working_on"] is False
    assert sd_after["progress_percentage"] == 0

    assert result["pre_state"] == {
        "sd_id": sd.id,
        "sd_key": sd.sd_key,
        "sd_status": "active",
        "sd_phase": "EXEC_COMPLETE",
        "sd_version": 1,
        "sd_progress": 0,
        "is_working_on": False,
        "claiming_session_id": None,
        "prd_id": sd.prd_id,
        "prd_status": "verification",
        "prd_phase": "planning",
        "stories": {"completed": 1, "testing": 1, "blocked": 1},
    }
    assert result["post_state"] == {
        **result["pre_state"],
        "sd_status": "pending_approval",
        "sd_phase": "LEAD_FINAL",
        "sd_version": 2,
        "prd_status": "completed",
        "prd_phase": "LEAD_APPROVAL",
        "stories": {"completed": 2, "blocked": 1},
        "stories_updated": 1,
    }
    await assert_handoff_recorded(
        db_pool, HANDOFF, sd, result, ctx, from_phase="PLAN", to_phase="LEAD", session_id=session
    )


async def test_plan_to_lead_refuses_a_prd_that_is_not_in_verification(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(
        db_pool, status="active", phase="EXEC_COMPLETE", with_prd=True, prd_status="in_progress"
    )
    result = await assert_refuses_wrong_phase(
        db_pool,
        HANDOFF,
        sd,
        expected=EXPECTED,
        actual_status="active",
        actual_phase="EXEC_COMPLETE",
    )
    assert result["actual"]["prd_status"] == "in_progress"
