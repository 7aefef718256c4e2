"""What only fn_atomic_lead_final_approval_transition does, against a real PostgreSQL (the contract every
transition function keeps is in test_transition_functions.py)."""

from __future__ import annotations

import asyncpg

from tests.support.db import (
    assert_handoff_recorded,
    call,
    claim,
    context,
    fetch_one,
    new_session_id,
    sd_row,
    snapshot,
)
from tests.support.factories import create_sd

HANDOFF = "LEAD-FINAL-APPROVAL"


async def test_lead_final_approval_completes_the_sd_and_releases_its_claim(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(
        db_pool, ready_for=HANDOFF, uuid_id=True, stories=[{"status": "completed"}]
    )
    assert sd.prd_id is not None
    session = new_session_id()
    assert (await claim(db_pool, sd.sd_key, session))["success"] is True
    before = await snapshot(db_pool, sd.id)
    assert before.sd["is_working_on"] is True
    ctx = context()

    result = await call(db_pool, HANDOFF, sd.sd_key, ctx, session_id=session)

    assert result["success"] is True, result
    assert result["transition_version"] == 2
    assert result["claims_released"] == 1
    sd_after = await sd_row(db_pool, sd.id)
    assert (sd_after["status"], sd_after["current_phase"]) == ("completed", "COMPLETED")
    assert sd_after["progress_percentage"] == 100
    assert sd_after["transition_version"] == 2
    assert sd_after["is_working_on"] is False
    assert sd_after["claiming_session_id"] is None
    assert sd_after["active_session_id"] is None
    assert sd_after["completion_date"] is not None
    claim_row = await fetch_one(
        db_pool, "SELECT * FROM claude_sessions WHERE session_id = $1", session
    )
    assert claim_row["status"] == "released"
    assert claim_row["release_reason"] == "completed"
    assert claim_row["released_at"] is not None
    assert (
        await db_pool.fetchval(
            "SELECT computed_status FROM v_active_sessions WHERE session_id = $1", session
        )
        == "released"
    )
    # PRD and stories are already final; this handoff leaves them alone.
    after = await snapshot(db_pool, sd.id)
    assert after.prd == before.prd
    assert after.stories == before.stories

    assert result["pre_state"] == {
        "sd_id": sd.id,
        "sd_key": sd.sd_key,
        "sd_status": "pending_approval",
        "sd_phase": "LEAD_FINAL",
        "sd_version": 1,
        "sd_progress": 0,
        "is_working_on": True,
        "claiming_session_id": session,
        "prd_id": sd.prd_id,
        "prd_status": "completed",
        "prd_phase": "planning",
        "stories": {"completed": 1},
    }
    assert result["post_state"] == {
        **result["pre_state"],
        "sd_status": "completed",
        "sd_phase": "COMPLETED",
        "sd_version": 2,
        "sd_progress": 100,
        "is_working_on": False,
        "claiming_session_id": None,
        "claims_released": 1,
    }
    await assert_handoff_recorded(
        db_pool,
        HANDOFF,
        sd,
        result,
        ctx,
        from_phase="LEAD",
        to_phase="COMPLETED",
        session_id=session,
    )


async def test_lead_final_approval_on_a_completed_sd_returns_the_first_outcome(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(db_pool, ready_for=HANDOFF)
    first = await call(db_pool, HANDOFF, sd.id, context())
    assert first["success"] is True, first
    applied = await snapshot(db_pool, sd.id)

    # A second approval (new request id, stale expected version) is a success that applies nothing.
    again = await call(db_pool, HANDOFF, sd.sd_key, context(expected_version=1))

    assert again == {**first, "idempotent_hit": True, "already_completed": True}
    after = await snapshot(db_pool, sd.id)
    assert after.without_audits() == applied.without_audits()
    assert after.audits == applied.audits


async def test_lead_final_approval_on_an_sd_completed_elsewhere_is_a_success_without_writes(
    db_pool: asyncpg.Pool,
) -> None:
    # Completed before this system recorded anything: there is no first outcome to return.
    sd = await create_sd(db_pool, status="completed", phase="COMPLETED", progress_percentage=100)
    before = await snapshot(db_pool, sd.id)

    result = await call(db_pool, HANDOFF, sd.id, context())

    assert result["success"] is True, result
    assert result["code"] == "OK"
    assert result["idempotent_hit"] is True
    assert result["already_completed"] is True
    assert result["transition_version"] == 1
    assert result["post_state"]["sd_status"] == "completed"
    after = await snapshot(db_pool, sd.id)
    assert after.without_audits() == before.without_audits()
    assert after.audits == []


async def test_lead_final_approval_releases_a_stale_claim_of_another_session(
    db_pool: asyncpg.Pool,
) -> None:
    # A stale claim does not block the approval, and the closed SD keeps no active claim.
    sd = await create_sd(db_pool, ready_for=HANDOFF)
    stale = new_session_id()
    assert (await claim(db_pool, sd.id, stale))["success"] is True
    await db_pool.execute(
        "UPDATE claude_sessions SET heartbeat_at = now() - interval '301 seconds' "
        "WHERE session_id = $1",
        stale,
    )
    result = await call(db_pool, HANDOFF, sd.id, context(), session_id=new_session_id())

    assert result["success"] is True, result
    assert result["claims_released"] == 1
    row = await fetch_one(db_pool, "SELECT * FROM claude_sessions WHERE session_id = $1", stale)
    assert (row["status"], row["release_reason"]) == ("released", "completed")
    assert (await sd_row(db_pool, sd.id))["claiming_session_id"] is None
