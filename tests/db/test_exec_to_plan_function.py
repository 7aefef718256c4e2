"""fn_atomic_exec_to_plan_transition against a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from tests.support.db import (
    Fault,
    assert_claim_holder_passes,
    assert_fault_rolls_back,
    assert_handoff_recorded,
    assert_idempotent_on_request_id,
    assert_refuses_foreign_claim,
    assert_refuses_unknown_sd,
    assert_refuses_version_conflict,
    assert_refuses_wrong_phase,
    call,
    context,
    new_session_id,
    prd_row,
    record_handoff_faults,
    sd_row,
    snapshot,
    story_rows,
)
from tests.support.factories import create_sd

HANDOFF = "EXEC-TO-PLAN"
STORIES_DONE = {"user_stories_updated": 2}

FAULTS = [
    Fault("1. Transition user stories", "user_stories", "UPDATE", "23514", {}),
    Fault("2. Transition PRD", "product_requirements_v2", "UPDATE", "23502", STORIES_DONE),
    Fault(
        "3. Transition SD",
        "strategic_directives_v2",
        "UPDATE",
        "22001",
        {**STORIES_DONE, "prd_updated": True},
    ),
    *record_handoff_faults(
        "4. Record handoff", {**STORIES_DONE, "prd_updated": True, "sd_updated": True}
    ),
]


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


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.id)
async def test_exec_to_plan_rolls_back_everything_when_a_step_fails(
    db_pool: asyncpg.Pool, fault: Fault
) -> None:
    sd = await create_sd(
        db_pool, ready_for=HANDOFF, stories=[{}, {"e2e_test_path": "e2e/x.spec.ts"}]
    )
    await assert_fault_rolls_back(db_pool, HANDOFF, sd, fault)


async def test_exec_to_plan_is_idempotent_on_request_id(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for=HANDOFF, stories=[{}])
    await assert_idempotent_on_request_id(db_pool, HANDOFF, sd)


@pytest.mark.parametrize(
    ("status", "phase"),
    [("in_progress", "PLAN_PRD"), ("active", "EXEC_COMPLETE"), ("in_progress", "EXEC")],
)
async def test_exec_to_plan_refuses_a_wrong_phase_naming_expected_and_actual(
    db_pool: asyncpg.Pool, status: str, phase: str
) -> None:
    sd = await create_sd(db_pool, status=status, phase=phase, with_prd=True, stories=[{}])
    await assert_refuses_wrong_phase(
        db_pool, HANDOFF, sd, expected="active / EXEC", actual_status=status, actual_phase=phase
    )


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


async def test_exec_to_plan_refuses_a_stale_expected_version(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for=HANDOFF)
    await assert_refuses_version_conflict(db_pool, HANDOFF, sd)


async def test_exec_to_plan_refuses_an_unknown_sd(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for=HANDOFF)
    await assert_refuses_unknown_sd(db_pool, HANDOFF, sd)


async def test_exec_to_plan_refuses_a_session_while_another_holds_a_live_claim(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(db_pool, ready_for=HANDOFF, stories=[{}])
    await assert_refuses_foreign_claim(db_pool, HANDOFF, sd)


async def test_exec_to_plan_lets_the_claim_holder_through(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for=HANDOFF)
    await assert_claim_holder_passes(db_pool, HANDOFF, sd)
