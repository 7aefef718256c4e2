"""What only fn_atomic_lead_to_plan_transition does, against a real PostgreSQL (the contract every
transition function keeps is in test_transition_functions.py)."""

from __future__ import annotations

import asyncpg
import pytest

from tests.support.db import (
    assert_handoff_recorded,
    call,
    context,
    new_session_id,
    prd_row,
    sd_row,
    snapshot,
    story_rows,
)
from tests.support.factories import create_sd

HANDOFF = "LEAD-TO-PLAN"


async def test_lead_to_plan_moves_the_sd_to_plan_prd_and_leaves_prd_and_stories_alone(
    db_pool: asyncpg.Pool,
) -> None:
    # A UUID id and a human sd_key, addressed by the key: the function resolves the canonical id.
    sd = await create_sd(
        db_pool,
        ready_for=HANDOFF,
        uuid_id=True,
        with_prd=True,
        stories=[{"status": "draft"}, {"status": "ready", "e2e_test_path": "e2e/a.spec.ts"}],
    )
    before = await snapshot(db_pool, sd.id)
    session = new_session_id()
    ctx = context()

    result = await call(db_pool, HANDOFF, sd.sd_key, ctx, session_id=session)

    assert result["success"] is True, result
    assert result["transition_version"] == 2
    sd_after = await sd_row(db_pool, sd.id)
    assert sd_after["status"] == "in_progress"
    assert sd_after["current_phase"] == "PLAN_PRD"
    assert sd_after["transition_version"] == 2
    assert sd_after["is_working_on"] is False
    assert sd_after["progress_percentage"] == 0
    assert sd_after["claiming_session_id"] is None
    assert sd_after["updated_at"] > before.sd["updated_at"]
    # PRD and stories are not this handoff's business.
    assert sd.prd_id is not None
    assert [await prd_row(db_pool, sd.prd_id)] == before.prd
    assert await story_rows(db_pool, sd.id) == before.stories

    assert result["pre_state"] == {
        "sd_id": sd.id,
        "sd_key": sd.sd_key,
        "sd_status": "draft",
        "sd_phase": "LEAD_APPROVAL",
        "sd_version": 1,
        "sd_progress": 0,
        "is_working_on": False,
        "claiming_session_id": None,
        "prd_id": sd.prd_id,
        "prd_status": "draft",
        "prd_phase": "planning",
        "stories": {"draft": 1, "ready": 1},
    }
    assert result["post_state"] == {
        **result["pre_state"],
        "sd_status": "in_progress",
        "sd_phase": "PLAN_PRD",
        "sd_version": 2,
    }
    await assert_handoff_recorded(
        db_pool, HANDOFF, sd, result, ctx, from_phase="LEAD", to_phase="PLAN", session_id=session
    )


@pytest.mark.parametrize(("status", "phase"), [("active", "LEAD"), ("draft", "LEAD")])
async def test_lead_to_plan_starts_from_every_lead_state(
    db_pool: asyncpg.Pool, status: str, phase: str
) -> None:
    sd = await create_sd(db_pool, status=status, phase=phase)
    result = await call(db_pool, HANDOFF, sd.id, context())
    assert result["success"] is True, result
    row = await sd_row(db_pool, sd.id)
    assert (row["status"], row["current_phase"]) == ("in_progress", "PLAN_PRD")
