"""fn_atomic_lead_final_approval_transition against a real PostgreSQL."""

from __future__ import annotations

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
    claim,
    context,
    new_session_id,
    record_handoff_faults,
    sd_row,
    snapshot,
)
from tests.support.factories import create_sd

HANDOFF = "LEAD-FINAL-APPROVAL"

FAULTS = [
    Fault("1. Complete SD", "strategic_directives_v2", "UPDATE", "23514", {}),
    Fault("2. Release session claim", "claude_sessions", "UPDATE", "55P03", {"sd_updated": True}),
    *record_handoff_faults("3. Record handoff", {"sd_updated": True, "claims_released": 1}),
]


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
    claim_row = await db_pool.fetchrow(
        "SELECT * FROM claude_sessions WHERE session_id = $1", session
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


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.id)
async def test_lead_final_approval_rolls_back_everything_when_a_step_fails(
    db_pool: asyncpg.Pool, fault: Fault
) -> None:
    # Held by the caller, so step 2 has a claim to release (and a row for the fault to hit).
    sd = await create_sd(db_pool, ready_for=HANDOFF)
    session = new_session_id()
    assert (await claim(db_pool, sd.id, session))["success"] is True
    await assert_fault_rolls_back(db_pool, HANDOFF, sd, fault, session_id=session)
    released = await db_pool.fetchval(
        "SELECT release_reason FROM claude_sessions WHERE session_id = $1", session
    )
    assert released == "completed"


async def test_lead_final_approval_is_idempotent_on_request_id(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for=HANDOFF)
    await assert_idempotent_on_request_id(db_pool, HANDOFF, sd)


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        ("active", "EXEC_COMPLETE"),
        ("pending_approval", "LEAD_APPROVAL"),
        ("completed", "LEAD_FINAL"),
        ("cancelled", "CANCELLED"),
    ],
)
async def test_lead_final_approval_refuses_a_wrong_phase_naming_expected_and_actual(
    db_pool: asyncpg.Pool, status: str, phase: str
) -> None:
    sd = await create_sd(db_pool, status=status, phase=phase, with_prd=True)
    await assert_refuses_wrong_phase(
        db_pool,
        HANDOFF,
        sd,
        expected="pending_approval / LEAD_FINAL",
        actual_status=status,
        actual_phase=phase,
    )


async def test_lead_final_approval_refuses_a_stale_expected_version(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for=HANDOFF)
    await assert_refuses_version_conflict(db_pool, HANDOFF, sd)


async def test_lead_final_approval_refuses_an_unknown_sd(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for=HANDOFF)
    await assert_refuses_unknown_sd(db_pool, HANDOFF, sd)


async def test_lead_final_approval_refuses_a_session_while_another_holds_a_live_claim(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(db_pool, ready_for=HANDOFF)
    await assert_refuses_foreign_claim(db_pool, HANDOFF, sd)


async def test_lead_final_approval_lets_the_claim_holder_through_and_releases_it(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(db_pool, ready_for=HANDOFF)
    await assert_claim_holder_passes(db_pool, HANDOFF, sd)
    assert (
        await db_pool.fetchval(
            "SELECT count(*) FROM claude_sessions WHERE sd_id = $1 AND status = 'active'", sd.id
        )
        == 0
    )


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
    row = await db_pool.fetchrow("SELECT * FROM claude_sessions WHERE session_id = $1", stale)
    assert (row["status"], row["release_reason"]) == ("released", "completed")
    assert (await sd_row(db_pool, sd.id))["claiming_session_id"] is None
