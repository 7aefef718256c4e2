"""The EHG_Engineer-shaped fixture behaves as their documented triggers and functions do.

If these fail, the adoption tests prove nothing: they rely on the fixture to refuse what the
original refuses.
"""

from __future__ import annotations

import asyncpg
import pytest

from tests.adopt.fixture import LEO_ACTOR, register_actor
from tests.support.db import fetch_one

NARRATIVE = (
    "executive_summary, deliverables_manifest, key_decisions, known_issues, "
    "resource_utilization, action_items, completeness_report"
)
GOOD = (
    "A handoff summary that is long enough for their seven-element check.",
    "deliverables",
    "decisions",
    "none",
    "resources",
    "actions",
    "complete",
)


async def insert_handoff(
    conn: asyncpg.Connection,
    sd_id: str,
    *,
    created_by: str | None,
    status: str = "accepted",
    handoff_type: str = "PLAN-TO-EXEC",
    narrative: tuple[str, ...] = GOOD,
) -> None:
    columns = "sd_id, from_phase, to_phase, handoff_type, status, " + NARRATIVE
    values = [sd_id, "PLAN", "EXEC", handoff_type, status, *narrative]
    if created_by is not None:
        columns += ", created_by"
        values.append(created_by)
    marks = ", ".join(f"${i + 1}" for i in range(len(values)))
    await conn.execute(f"INSERT INTO sd_phase_handoffs ({columns}) VALUES ({marks})", *values)


async def test_the_fixture_holds_the_documented_data_shapes(ehg: asyncpg.Connection) -> None:
    phases = await ehg.fetchval(
        "SELECT array_agg(DISTINCT current_phase ORDER BY current_phase) "
        "FROM strategic_directives_v2 WHERE current_phase IS NOT NULL"
    )
    assert len(phases) == 11
    assert await ehg.fetchval("SELECT count(*) FROM strategic_directives_v2 WHERE id <> sd_key") > 0
    assert (
        await ehg.fetchval(
            "SELECT count(*) FROM strategic_directives_v2 WHERE current_phase IS NULL"
        )
        == 1
    )
    assert (
        await ehg.fetchval(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM product_requirements_v2 GROUP BY sd_id) x"
        )
        == 2
    )
    assert (
        await ehg.fetchval("SELECT count(*) FROM sub_agent_execution_results WHERE phase IS NULL")
        == 2
    )
    statuses = await ehg.fetch(
        "SELECT computed_status, count(*) FROM v_active_sessions GROUP BY 1 ORDER BY 1"
    )
    assert {r["computed_status"] for r in statuses} >= {"active", "idle", "stale", "released"}
    # The sync of claims onto SD flags holds for the loaded claims.
    assert await ehg.fetchval(
        "SELECT is_working_on FROM strategic_directives_v2 WHERE sd_key = 'SD-FIX-008'"
    )


@pytest.mark.parametrize("actor", [None, "LEO_AGENT", LEO_ACTOR])
async def test_an_untrusted_actor_cannot_create_a_handoff(
    ehg: asyncpg.Connection, actor: str | None
) -> None:
    with pytest.raises(asyncpg.RaiseError, match="HANDOFF_BYPASS_BLOCKED"):
        await insert_handoff(ehg, "SD-FIX-008", created_by=actor)


async def test_a_registered_actor_still_needs_the_claim(ehg: asyncpg.Connection) -> None:
    await register_actor(ehg)
    # SD-FIX-008 is claimed by an active session; SD-FIX-010 is not claimed.
    await insert_handoff(ehg, "SD-FIX-008", created_by=LEO_ACTOR)
    with pytest.raises(asyncpg.RaiseError, match="without active session claim"):
        await insert_handoff(ehg, "SD-FIX-010", created_by=LEO_ACTOR)
    # A rejection is documented without a claim.
    await insert_handoff(ehg, "SD-FIX-010", created_by=LEO_ACTOR, status="rejected")


async def test_an_accepted_handoff_needs_all_seven_elements(ehg: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.RaiseError, match="at least 50 characters"):
        await insert_handoff(
            ehg, "SD-FIX-008", created_by="SYSTEM_MIGRATION", narrative=("short", *GOOD[1:])
        )
    with pytest.raises(asyncpg.RaiseError, match="7 handoff elements"):
        await insert_handoff(
            ehg, "SD-FIX-008", created_by="SYSTEM_MIGRATION", narrative=(*GOOD[:6], "")
        )


async def test_entering_exec_needs_an_accepted_plan_to_exec(ehg: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.RaiseError, match="cannot enter EXEC"):
        await ehg.execute(
            "UPDATE strategic_directives_v2 SET current_phase = 'EXEC' WHERE id = 'SD-FIX-006'"
        )
    await insert_handoff(ehg, "SD-FIX-006", created_by="SYSTEM_MIGRATION")
    await ehg.execute(
        "UPDATE strategic_directives_v2 SET current_phase = 'EXEC' WHERE id = 'SD-FIX-006'"
    )


async def test_completion_needs_progress_100_and_leaving_lead_approval_needs_quality(
    ehg: asyncpg.Connection,
) -> None:
    with pytest.raises(asyncpg.RaiseError, match="progress is"):
        await ehg.execute(
            "UPDATE strategic_directives_v2 SET status = 'completed' WHERE id = 'SD-FIX-006'"
        )
    # SD-FIX-CHILD-001 (quality_checked false) and SD-FIX-002 (true) are in LEAD_APPROVAL.
    with pytest.raises(asyncpg.RaiseError, match="quality_checked"):
        await ehg.execute(
            "UPDATE strategic_directives_v2 SET current_phase = 'PLAN_PRD' WHERE sd_key = 'SD-FIX-CHILD-001'"
        )
    await ehg.execute(
        "UPDATE strategic_directives_v2 SET current_phase = 'PLAN_PRD' WHERE sd_key = 'SD-FIX-002'"
    )


async def test_results_with_control_characters_are_refused(ehg: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="control characters"):
        await ehg.execute(
            "INSERT INTO sub_agent_execution_results (sd_id, sub_agent_code, verdict, confidence, "
            "detailed_analysis) VALUES ('SD-FIX-006', 'SECURITY', 'PASS', 90, $1)",
            "bell \x07 here",
        )


async def test_their_claim_functions_and_the_session_sync(ehg: asyncpg.Connection) -> None:
    claim = "SELECT claim_sd(p_sd_id => $1, p_session_id => $2, p_track => $3)"  # their named call
    phantom = await ehg.fetchval(claim, "SD-FIX-010", "session_unknown", "A")
    assert phantom["error"] == "session_not_registered"
    # SD-FIX-008 is held by a live session; SD-FIX-003's claim is stale (2 h without heartbeat).
    taken = await ehg.fetchval(claim, "SD-FIX-008", "session_4e5f6a7b_tty5_505", "A")
    assert taken["error"] == "already_claimed"
    stale = await ehg.fetchval(claim, "SD-FIX-003", "session_4e5f6a7b_tty5_505", "A")
    assert stale["success"] is True
    sd = await fetch_one(
        ehg,
        "SELECT is_working_on, claiming_session_id FROM strategic_directives_v2 "
        "WHERE sd_key = 'SD-FIX-003'",
    )
    assert tuple(sd) == (True, "session_4e5f6a7b_tty5_505")
    assert (
        await ehg.fetchval(
            "SELECT released_reason FROM claude_sessions WHERE session_id = 'session_2c3d4e5f_tty3_303'"
        )
        == "stale_takeover"
    )
    released = await ehg.fetchval(
        "SELECT release_sd(p_session_id => $1, p_reason => 'manual')", "session_4e5f6a7b_tty5_505"
    )
    assert released["released_sd_key"] == "SD-FIX-003"
    assert not await ehg.fetchval(
        "SELECT is_working_on FROM strategic_directives_v2 WHERE sd_key = 'SD-FIX-003'"
    )


async def test_their_transition_rpcs_run_with_their_named_arguments(
    ehg: asyncpg.Connection,
) -> None:
    # SD-FIX-009 (a UUID id) sits in EXEC_COMPLETE; their RPC has no precondition.
    result = await ehg.fetchval(
        "SELECT fn_atomic_exec_to_plan_transition(p_sd_id => 'SD-FIX-009', p_prd_id => NULL, "
        "p_session_id => 's1', p_request_id => 'their-req-1')"
    )
    assert result["success"] is True
    audit = await fetch_one(
        ehg,
        "SELECT a.status, a.sd_id = sd.uuid_id AS keyed_on_uuid FROM sd_transition_audit a "
        "JOIN strategic_directives_v2 sd ON sd.uuid_id = a.sd_id WHERE a.request_id = 'their-req-1'",
    )
    assert tuple(audit) == ("completed", True)
    again = await ehg.fetchval(
        "SELECT fn_atomic_exec_to_plan_transition(p_sd_id => 'SD-FIX-009', p_prd_id => NULL, "
        "p_session_id => 's1', p_request_id => 'their-req-1')"
    )
    assert again["idempotent_hit"] is True
    lead = await ehg.fetchval(
        "SELECT fn_atomic_lead_to_plan_transition(p_sd_id => 'SD-FIX-002', p_session_id => 's1', "
        "p_request_id => 'their-req-2')"
    )
    assert lead["success"] is True


async def test_rls_hides_rows_from_roles_without_a_policy(ehg: asyncpg.Connection) -> None:
    await ehg.execute("SET ROLE anon")
    try:
        assert await ehg.fetchval("SELECT count(*) FROM strategic_directives_v2") > 0
        assert await ehg.fetchval("SELECT count(*) FROM sd_transition_audit") == 0
    finally:
        await ehg.execute("RESET ROLE")
