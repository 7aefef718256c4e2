"""LEAD's decision reaches PostgreSQL (issue 17 item 3, review F14): `approve` and `reject` are
recorded in sd_lead_decisions before they are acknowledged; LEAD-FINAL-APPROVAL's handoff record
and audit row name the approver and the reason; a rejection by LEAD leaves its row."""

from __future__ import annotations

import asyncpg
import pytest

from leo.api import LeoClient, LifecycleClient
from leo.domain.handoffs import Step
from tests.support.db import fetch_one
from tests.support.factories import SdFixture, create_sd, seed_accepted_handoff
from tests.support.workflows import check_replay, patches_in
from tests.workflows.test_sd_lifecycle import wait_until
from workflows.sd_lifecycle_base import LEAD_DECISION


async def awaiting_lead(pool: asyncpg.Pool) -> SdFixture:
    """An SD at pending_approval / LEAD_FINAL that LEAD-FINAL-APPROVAL accepts."""
    sd = await create_sd(
        pool,
        ready_for="LEAD-FINAL-APPROVAL",
        stories=[{"status": "completed"}],
        sd_type="infrastructure",
    )
    await pool.execute("INSERT INTO retrospectives (sd_id, quality_score) VALUES ($1, 90)", sd.id)
    await seed_accepted_handoff(pool, sd.id, "PLAN-TO-LEAD")
    await pool.execute(
        "UPDATE user_stories SET validation_status = 'validated' WHERE sd_id = $1", sd.id
    )
    return sd


async def test_the_approval_is_in_the_handoff_record_and_the_audit_row(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    sd = await awaiting_lead(db_pool)
    lifecycle = LifecycleClient(leo)
    handle = await lifecycle.start(sd.id, session_id="session-lead")
    await wait_until(lifecycle, sd.id, "approval")
    ack = await lifecycle.approve(sd.id, approver="lead@example.com", reason="ship it")
    assert ack.accepted
    final = await lifecycle.wait(handle)
    assert final.state == "completed"
    assert final.steps[-1].step == Step.LEAD_FINAL_APPROVAL

    decision = await fetch_one(
        db_pool,
        "SELECT id::text, decision, approver, reason, session_id, request_id, db_role "
        "FROM sd_lead_decisions WHERE sd_id = $1",
        sd.id,
    )
    assert (decision["decision"], decision["approver"], decision["reason"]) == (
        "approved",
        "lead@example.com",
        "ship it",
    )
    assert decision["session_id"] == "session-lead"
    assert decision["request_id"].startswith(f"{handle.id}/")
    record = await fetch_one(
        db_pool,
        "SELECT metadata -> 'lead_approval' AS approval FROM sd_phase_handoffs "
        "WHERE sd_id = $1 AND handoff_type = 'LEAD-FINAL-APPROVAL' AND status = 'accepted'",
        sd.id,
    )
    audit = await fetch_one(
        db_pool,
        "SELECT result -> 'lead_approval' AS approval FROM sd_transition_audit "
        "WHERE sd_id = $1 AND transition_type = 'LEAD_FINAL_APPROVAL' AND status = 'completed'",
        sd.id,
    )
    for approval in (record["approval"], audit["approval"]):
        assert approval["approver"] == "lead@example.com"
        assert approval["reason"] == "ship it"
        assert approval["decision_id"] == decision["id"]
    history = await check_replay(leo.client, handle.id, "lead_decision")
    assert LEAD_DECISION in patches_in(history)


async def test_a_rejection_by_lead_leaves_its_row(leo: LeoClient, db_pool: asyncpg.Pool) -> None:
    sd = await awaiting_lead(db_pool)
    lifecycle = LifecycleClient(leo)
    handle = await lifecycle.start(sd.id)
    await wait_until(lifecycle, sd.id, "approval")
    await lifecycle.reject(sd.id, approver="lead", reason="scope creep")
    final = await lifecycle.wait(handle)
    assert final.state == "rejected_by_lead"

    rows = await db_pool.fetch(
        "SELECT decision, approver, reason FROM sd_lead_decisions WHERE sd_id = $1", sd.id
    )
    assert [tuple(r) for r in rows] == [("rejected", "lead", "scope creep")]
    phase = await db_pool.fetchval(
        "SELECT current_phase FROM strategic_directives_v2 WHERE id = $1", sd.id
    )
    assert phase == "LEAD_FINAL"


async def test_the_decision_function_is_idempotent_in_phase_and_append_only(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await awaiting_lead(db_pool)
    call = (
        "SELECT fn_record_lead_decision(p_sd_id => $1, p_session_id => NULL, "
        "p_request_id => $2, p_decision => $3, p_approver => $4, p_reason => $5)"
    )
    first = await db_pool.fetchval(call, sd.id, "req-1", "approved", "lead", "")
    again = await db_pool.fetchval(call, sd.id, "req-1", "approved", "lead", "")
    assert first["success"] and not first["idempotent_hit"]
    assert again["idempotent_hit"] and again["decision_id"] == first["decision_id"]

    no_reason = await db_pool.fetchval(call, sd.id, "req-2", "rejected", "lead", " ")
    assert no_reason["code"] == "INVALID_INPUT" and "reason" in no_reason["error"]
    blank = await db_pool.fetchval(call, sd.id, "req-3", "approved", "  ", "")
    assert blank["code"] == "INVALID_INPUT"

    early = await create_sd(db_pool)
    refused = await db_pool.fetchval(call, early.id, "req-4", "approved", "lead", "")
    assert refused["code"] == "INVALID_PHASE" and "LEAD_FINAL" in refused["error"]
    assert (
        await db_pool.fetchval(
            "SELECT count(*) FROM sd_lead_decisions WHERE sd_id = ANY($1::text[])",
            [sd.id, early.id],
        )
        == 1
    )

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await db_pool.execute("UPDATE sd_lead_decisions SET approver = 'x' WHERE sd_id = $1", sd.id)
