from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from db.transitions import TransitionContext, TransitionResult, call_transition
from leo.domain.handoffs import HandoffType
from tests.cli.helpers import Leo, assert_one_error_line
from tests.support.factories import SdFixture, create_sd


@dataclass(frozen=True)
class History:
    sd: SdFixture
    accepted: TransitionResult
    failed: TransitionResult
    session_id: str
    trigger_message: str


@pytest.fixture
async def sd_with_history(db_pool: asyncpg.Pool) -> History:
    """An SD that went LEAD-TO-PLAN, then failed PLAN-TO-EXEC on a real database error.

    The error comes from a trigger that refuses PRD updates of this SD only, so step
    "1. Transition PRD" fails and the function rolls back and keeps a failed audit row.
    """
    sd = await create_sd(
        db_pool, ready_for="LEAD-TO-PLAN", with_prd=True, stories=[{"title": "One"}]
    )
    session_id = f"session-{uuid.uuid4().hex[:8]}"
    claimed = await db_pool.fetchval("SELECT claim_sd($1, $2)", sd.id, session_id)
    assert claimed["success"], claimed
    accepted = await call_transition(
        db_pool,
        HandoffType.LEAD_TO_PLAN,
        sd_id=sd.sd_key,
        session_id=session_id,
        context=TransitionContext(request_id=f"lead-to-plan:{sd.id}", expected_version=1),
    )
    assert accepted.success, accepted.error

    name = f"leo_test_refuse_{uuid.uuid4().hex[:12]}"
    message = f"PRD of {sd.id} is frozen by the test"
    # DDL takes no bind parameters: the values are quoted by PostgreSQL itself.
    quoted = await db_pool.fetchrow(
        "SELECT quote_literal($1::text) AS sd, quote_literal($2::text) AS message", sd.id, message
    )
    assert quoted is not None
    sd_literal, message_literal = quoted["sd"], quoted["message"]
    await db_pool.execute(
        f"""
        CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            IF NEW.sd_id = {sd_literal} THEN
                RAISE EXCEPTION '%', {message_literal} USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END $fn$;
        CREATE TRIGGER {name} BEFORE UPDATE ON product_requirements_v2
            FOR EACH ROW EXECUTE FUNCTION {name}();
        """
    )
    try:
        failed = await call_transition(
            db_pool,
            HandoffType.PLAN_TO_EXEC,
            sd_id=sd.id,
            session_id=session_id,
            context=TransitionContext(request_id=f"plan-to-exec:{sd.id}", expected_version=2),
        )
    finally:
        await db_pool.execute(
            f"DROP TRIGGER {name} ON product_requirements_v2; DROP FUNCTION {name}();"
        )
    assert not failed.success
    assert failed.code == "TRANSITION_FAILED"
    return History(sd, accepted, failed, session_id, message)


async def audit_rows(pool: asyncpg.Pool, sd_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT id, status, transition_type, request_id, error_details FROM sd_transition_audit "
        "WHERE sd_id = $1 ORDER BY started_at",
        sd_id,
    )
    return [dict(row) for row in rows]


async def test_status_shows_phase_version_claim_and_latest_handoffs(
    leo: Leo, sd_with_history: History
) -> None:
    h = sd_with_history
    result = await leo("status", h.sd.sd_key)

    assert result.exit_code == 0, result.output
    text = result.stdout
    # The failed PLAN-TO-EXEC changed nothing: the SD is where LEAD-TO-PLAN left it.
    for fragment in (
        h.sd.sd_key,
        "in_progress",
        "PLAN_PRD",
        f"{h.session_id} (active, heartbeat",
        "Latest handoffs",
        "LEAD-TO-PLAN",
        "LEAD -> PLAN",
        "accepted",
        f"lead-to-plan:{h.sd.id}",
    ):
        assert fragment in text, fragment
    assert "PLAN-TO-EXEC" not in text
    assert "version     2" in text


async def test_status_json_is_the_sd_state_claim_and_handoffs(
    leo: Leo, sd_with_history: History, db_pool: asyncpg.Pool
) -> None:
    h = sd_with_history
    data = await leo.json("status", h.sd.id)

    assert (data["sd_id"], data["sd_key"]) == (h.sd.id, h.sd.sd_key)
    assert (data["status"], data["current_phase"], data["transition_version"]) == (
        "in_progress",
        "PLAN_PRD",
        2,
    )
    assert data["claim"]["session_id"] == h.session_id
    assert data["claim"]["computed_status"] == "active"
    assert data["claiming_session_id"] == h.session_id
    [handoff] = data["handoffs"]
    assert handoff["id"] == str(h.accepted.handoff_id)
    assert (handoff["handoff_type"], handoff["from_phase"], handoff["to_phase"]) == (
        "LEAD-TO-PLAN",
        "LEAD",
        "PLAN",
    )
    assert (handoff["status"], handoff["request_id"]) == ("accepted", f"lead-to-plan:{h.sd.id}")


async def test_audit_lists_attempts_in_order_with_the_failed_error_record(
    leo: Leo, sd_with_history: History, db_pool: asyncpg.Pool
) -> None:
    h = sd_with_history
    completed, failed = await audit_rows(db_pool, h.sd.id)
    error = failed["error_details"]

    result = await leo("audit", h.sd.sd_key)

    assert result.exit_code == 0, result.output
    text = result.stdout
    assert f"Audit trail of {h.sd.sd_key}: 2 attempts, 1 failed" in text
    # Oldest first: the completed LEAD-TO-PLAN row, then the failed PLAN-TO-EXEC one.
    assert text.index(str(completed["id"])) < text.index(str(failed["id"]))
    assert "LEAD_APPROVAL -> PLAN_PRD" in text
    assert "1 -> 2" in text
    assert f"Failed attempt #2: PLAN-TO-EXEC, audit {failed['id']}" in text
    for name in ("failed_step", "error_code", "error_message", "recovery_action"):
        assert name in text, name
    assert error["failed_step"] == "1. Transition PRD"
    assert error["error_code"] == "23514"
    assert error["error_message"] == h.trigger_message
    for value in (error["failed_step"], error["error_code"], h.trigger_message):
        assert value in text, value
    assert "Nothing was applied" in text


async def test_audit_json_is_the_audit_trail_with_error_records(
    leo: Leo, sd_with_history: History, db_pool: asyncpg.Pool
) -> None:
    h = sd_with_history
    rows = await audit_rows(db_pool, h.sd.id)

    data = await leo.json("audit", h.sd.sd_key)

    assert (data["sd_id"], data["sd_key"]) == (h.sd.id, h.sd.sd_key)
    entries = data["entries"]
    assert [e["id"] for e in entries] == [str(row["id"]) for row in rows]
    assert [(e["transition_type"], e["status"]) for e in entries] == [
        ("LEAD-TO-PLAN", "completed"),
        ("PLAN-TO-EXEC", "failed"),
    ]
    done, failed = entries
    assert done["id"] == str(h.accepted.audit_id)
    assert done["handoff_id"] == str(h.accepted.handoff_id)
    assert (done["pre_state"]["sd_phase"], done["post_state"]["sd_phase"]) == (
        "LEAD_APPROVAL",
        "PLAN_PRD",
    )
    assert done["error_details"] is None
    assert failed["id"] == str(h.failed.audit_id)
    assert failed["post_state"] is None
    assert failed["error_details"] == rows[1]["error_details"]
    assert set(failed["error_details"]) >= {
        "error_code",
        "error_message",
        "failed_step",
        "pre_state",
        "partial_state",
        "recovery_action",
    }


async def test_status_and_audit_of_an_sd_without_history(leo: Leo, db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool)

    status = await leo("status", sd.sd_key)
    assert status.exit_code == 0, status.output
    assert "No handoffs yet." in status.stdout
    assert "claim       none" in status.stdout

    audit = await leo.json("audit", sd.sd_key)
    assert audit == {"sd_id": sd.id, "sd_key": sd.sd_key, "entries": [], "edits": []}


@pytest.mark.parametrize("command", ["status", "audit"])
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
async def test_status_and_audit_refuse_an_unknown_sd(leo: Leo, command: str, as_json: bool) -> None:
    result = await leo(command, "SD-NOPE-404", *(["--json"] if as_json else []))
    line = assert_one_error_line(result, 2)
    assert line == "leo: SD not found: SD-NOPE-404"
