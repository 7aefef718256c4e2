"""Adopt mode's functions in schema leo, called the way LEO's Python calls them (same names,
named arguments, search_path leo, public), on the EHG_Engineer-shaped fixture: five handoffs
their triggers accept, the refusals, each trigger veto, and a race with their RPC."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from db.adopt.runner import adopt
from db.pool import connect
from tests.adopt.fixture import (
    LEO_ACTOR,
    dsn_with,
    new_sd,
    register_actor,
    register_session,
    table_checksums,
)
from tests.support.db import GATE_SUMMARY, call, context, new_request_id

HANDOFFS = ["LEAD-TO-PLAN", "PLAN-TO-EXEC", "EXEC-TO-PLAN", "PLAN-TO-LEAD", "LEAD-FINAL-APPROVAL"]
NARRATIVE = (
    "executive_summary", "deliverables_manifest", "key_decisions", "known_issues",
    "resource_utilization", "action_items", "completeness_report",
)  # fmt: skip


async def claim(conn: asyncpg.Connection, sd_id: str) -> str:
    session = f"session_leo_{uuid.uuid4().hex[:8]}"
    result = await conn.fetchval(
        "SELECT claim_sd(p_sd_id => $1, p_session_id => $2)", sd_id, session
    )
    assert result["success"] is True, result
    return session


async def everything_but_audits(conn: asyncpg.Connection) -> dict[str, str]:
    """Checksums of every table of theirs and ours except the two audit tables."""
    sums = {**await table_checksums(conn, "public"), **await table_checksums(conn, "leo")}
    for audit in ("public.sd_transition_audit", "leo.transition_results"):
        sums.pop(audit)
    return sums


async def failed_audits(conn: asyncpg.Connection, sd_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT a.status, a.error_details, a.request_id FROM public.sd_transition_audit a "
        "JOIN public.strategic_directives_v2 sd ON sd.uuid_id = a.sd_id WHERE sd.id = $1",
        sd_id,
    )
    return [dict(r) for r in rows]


async def test_five_handoffs_their_triggers_accept(adopted: asyncpg.Connection) -> None:
    sd_id, key = await new_sd(adopted)
    session = await claim(adopted, key)  # by key: LEO resolves either
    for version, handoff in enumerate(HANDOFFS, start=1):
        result = await call(adopted, handoff, sd_id, context(expected_version=version),
                            session_id=session)  # fmt: skip
        assert result["success"] is True, (result.get("error_details") or {}).get("error_context")
        assert result["transition_version"] == version + 1
    sd = await adopted.fetchrow(
        "SELECT status, current_phase, progress_percentage, is_working_on, transition_version, "
        "uuid_id FROM public.strategic_directives_v2 WHERE id = $1",
        sd_id,
    )
    assert sd is not None
    assert (sd["status"], sd["current_phase"], sd["progress_percentage"]) == (
        "completed", "COMPLETED", 100,
    )  # fmt: skip
    assert sd["is_working_on"] is False and sd["transition_version"] == 6
    handoffs = await adopted.fetch(
        f"SELECT handoff_type, status, created_by, {', '.join(NARRATIVE)} "
        "FROM public.sd_phase_handoffs WHERE sd_id = $1 ORDER BY created_at",
        sd_id,
    )
    assert [h["handoff_type"] for h in handoffs] == HANDOFFS
    assert {(h["status"], h["created_by"]) for h in handoffs} == {("accepted", LEO_ACTOR)}
    assert all(len(h["executive_summary"]) >= 50 for h in handoffs)
    assert all(h[field].strip() for h in handoffs for field in NARRATIVE)
    audits = await adopted.fetch(
        "SELECT transition_type, status, request_id FROM public.sd_transition_audit "
        "WHERE sd_id = $1 ORDER BY completed_at",
        sd["uuid_id"],
    )
    assert [a["transition_type"] for a in audits] == [h.replace("-", "_") for h in HANDOFFS]
    assert {a["status"] for a in audits} == {"completed"}
    assert all(a["request_id"].startswith("leo:") for a in audits)
    # Their side sees the claim released through their own function.
    session_row = await adopted.fetchrow(
        "SELECT sd_key, released_reason FROM public.claude_sessions WHERE session_id = $1", session
    )
    assert session_row is not None and tuple(session_row) == (None, "completed")
    # LEO's reads (views) see the SD as LEO's models expect.
    view = await adopted.fetchrow(
        "SELECT status, current_phase, transition_version FROM strategic_directives_v2 "
        "WHERE id = leo_resolve_sd_id($1)",
        key,
    )
    assert view is not None and tuple(view) == ("completed", "COMPLETED", 6)


async def test_an_idempotent_repeat_and_a_version_conflict_write_nothing(
    adopted: asyncpg.Connection,
) -> None:
    sd_id, _ = await new_sd(adopted)
    session = await claim(adopted, sd_id)
    ctx = context(expected_version=1)
    first = await call(adopted, "LEAD-TO-PLAN", sd_id, ctx, session_id=session)
    assert first["success"] is True
    before = await everything_but_audits(adopted)
    audits = await failed_audits(adopted, sd_id)

    again = await call(adopted, "LEAD-TO-PLAN", sd_id, ctx, session_id=session)
    assert again["idempotent_hit"] is True and again["audit_id"] == first["audit_id"]
    stale = await call(adopted, "PLAN-TO-EXEC", sd_id, context(expected_version=1),
                       session_id=session)  # fmt: skip
    assert stale["code"] == "VERSION_CONFLICT"
    assert stale["actual_version"] == 2

    assert await everything_but_audits(adopted) == before
    assert await failed_audits(adopted, sd_id) == audits


async def test_a_foreign_claim_is_not_driven(adopted: asyncpg.Connection) -> None:
    sd_id, key = await new_sd(adopted)
    theirs = f"session_{uuid.uuid4().hex[:8]}_tty1_1"
    await register_session(adopted, theirs)
    claimed = await adopted.fetchval(
        "SELECT public.claim_sd(p_sd_id => $1, p_session_id => $2, p_track => 'A')", key, theirs
    )
    assert claimed["success"] is True
    before = await everything_but_audits(adopted)

    ours = await adopted.fetchval(
        "SELECT claim_sd(p_sd_id => $1, p_session_id => $2)", sd_id, "session_leo_x"
    )
    assert ours["code"] == "CLAIMED_BY_OTHER_SESSION" and ours["claimed_by"] == theirs
    result = await call(adopted, "LEAD-TO-PLAN", sd_id, context(), session_id="session_leo_x")
    assert result["code"] == "CLAIMED_BY_OTHER_SESSION"

    after = await everything_but_audits(adopted)
    # Only LEO's session registration (their phantom guard needs one) was written.
    assert {k for k in after if after[k] != before[k]} == {"public.claude_sessions"}
    assert await failed_audits(adopted, sd_id) == []


async def assert_vetoed(
    conn: asyncpg.Connection, handoff: str, sd_id: str, session: str | None, message: str,
    expected_version: int = 1,
) -> dict[str, Any]:  # fmt: skip
    before = await everything_but_audits(conn)
    audits = await failed_audits(conn, sd_id)
    result = await call(conn, handoff, sd_id, context(expected_version=expected_version),
                        session_id=session)  # fmt: skip
    assert result["code"] == "TRANSITION_FAILED", result
    assert message in result["error"], result["error"]
    assert await everything_but_audits(conn) == before
    new = [a for a in await failed_audits(conn, sd_id) if a not in audits]
    assert [a["status"] for a in new] == ["failed"]
    assert message in new[0]["error_details"]["error_message"]
    return result


async def test_each_trigger_veto_leaves_only_a_failed_audit_row(
    adopted: asyncpg.Connection,
) -> None:
    # Quality on advancement: leaving LEAD_APPROVAL unchecked.
    unchecked, _ = await new_sd(adopted, quality_checked=False)
    session = await claim(adopted, unchecked)
    await assert_vetoed(adopted, "LEAD-TO-PLAN", unchecked, session, "quality_checked")

    # The claim requirement: no session holds the SD.
    unclaimed, _ = await new_sd(adopted)
    await assert_vetoed(adopted, "LEAD-TO-PLAN", unclaimed, None, "without active session claim")

    # The actor allow-list: their owner took LEO's actor off it.
    sd_id, _ = await new_sd(adopted)
    session = await claim(adopted, sd_id)
    policy = await adopted.fetchval(
        "SELECT pg_get_functiondef('public.handoff_actor_policy(text)'::regprocedure)"
    )
    await adopted.execute(policy.replace(f"'{LEO_ACTOR}'", "'SOMEONE-ELSE'"))
    await assert_vetoed(adopted, "LEAD-TO-PLAN", sd_id, session, "HANDOFF_BYPASS_BLOCKED")
    await adopted.execute(policy)

    # Their handoff validation, made stricter than LEO's generated narrative.
    validate = await adopted.fetchval(
        "SELECT pg_get_functiondef('public.auto_validate_handoff()'::regprocedure)"
    )
    await adopted.execute(validate.replace("< 50", "< 5000"))
    await assert_vetoed(adopted, "LEAD-TO-PLAN", sd_id, session, "at least 50 characters")
    await adopted.execute(validate)

    # Progress on completion: a blocked story keeps their progress under 100.
    blocked, _ = await new_sd(adopted, blocked_story=True)
    session = await claim(adopted, blocked)
    for version, handoff in enumerate(HANDOFFS[:4], start=1):
        ok = await call(adopted, handoff, blocked, context(expected_version=version),
                        session_id=session)  # fmt: skip
        assert ok["success"] is True, ok
    await assert_vetoed(adopted, "LEAD-FINAL-APPROVAL", blocked, session, "progress is 85",
                        expected_version=5)  # fmt: skip


async def test_results_with_control_characters_are_recorded_printable(
    adopted: asyncpg.Connection,
) -> None:
    sd_id, _ = await new_sd(adopted)
    session = await claim(adopted, sd_id)
    results = [
        {
            "idempotency_key": f"key-{uuid.uuid4()}", "reuse_key": "r1", "code": "SECURITY",
            "name": "Security", "verdict": "PASS", "confidence": 90,
            "critical_issues": ["bad \u0007 bell"], "warnings": [], "recommendations": [],
            "detailed_analysis": "tab\tok, bell \x07 gone", "execution_time": 1.2,
            "metadata": {},
        }
    ]  # fmt: skip
    result = await adopted.fetchval(
        "SELECT fn_commit_handoff(p_handoff_type => 'LEAD-TO-PLAN', p_sd_id => $1, "
        "p_accepted => true, p_phase => 'LEAD_PRE_APPROVAL', p_sub_agent_results => $2, "
        "p_prd_id => NULL, p_session_id => $3, p_transition_context => $4)",
        sd_id,
        results,
        session,
        context(expected_version=1),
    )
    assert result["success"] is True, result
    row = await adopted.fetchrow(
        "SELECT r.detailed_analysis, r.critical_issues, r.phase, r.source, r.execution_time "
        "FROM public.sub_agent_execution_results r WHERE r.sd_id = $1",
        sd_id,
    )
    assert row is not None
    assert row["detailed_analysis"] == "tab ok, bell  gone".replace(" ok", "\tok")
    assert row["critical_issues"] == ["bad  bell"]
    assert (row["phase"], row["source"], row["execution_time"]) == ("LEAD_PRE_APPROVAL", "leo", 2)
    seen = await adopted.fetchrow(
        "SELECT idempotency_key, phase FROM sub_agent_execution_results WHERE sd_id = $1", sd_id
    )
    assert seen is not None and seen["idempotency_key"] == results[0]["idempotency_key"]


async def test_a_race_with_their_rpc_ends_with_one_transition(
    adopted: asyncpg.Connection, ehg_dsn: str
) -> None:
    sd_id, key = await new_sd(adopted)
    session = await claim(adopted, sd_id)
    for version, handoff in enumerate(HANDOFFS[:2], start=1):
        assert (await call(adopted, handoff, sd_id, context(expected_version=version),
                           session_id=session))["success"]  # fmt: skip
    theirs = await connect(ehg_dsn)  # their tooling: default search_path
    try:
        # Their RPC holds its lock (on the key, as their callers spell it) when ours arrives.
        tx = theirs.transaction()
        await tx.start()
        rpc = await theirs.fetchval(
            "SELECT fn_atomic_exec_to_plan_transition(p_sd_id => $1, p_prd_id => NULL, "
            "p_session_id => 'their-session', p_request_id => $2)",
            key,
            new_request_id(),
        )
        assert rpc["success"] is True
        ours = await call(adopted, "EXEC-TO-PLAN", sd_id, context(expected_version=3),
                          session_id=session)  # fmt: skip
        assert ours["code"] == "CONCURRENT_LOCK"
        await tx.commit()
    finally:
        await theirs.close()
    after = await call(adopted, "EXEC-TO-PLAN", sd_id, context(expected_version=4),
                       session_id=session)  # fmt: skip
    assert after["code"] == "INVALID_PHASE"  # theirs moved it to EXEC_COMPLETE
    transitions = await adopted.fetchval(
        "SELECT count(*) FROM public.sd_transition_audit a JOIN public.strategic_directives_v2 sd "
        "ON sd.uuid_id = a.sd_id WHERE sd.id = $1 AND a.transition_type = 'EXEC_TO_PLAN' "
        "AND a.status = 'completed'",
        sd_id,
    )
    assert transitions == 1


async def test_concurrent_calls_of_both_rpcs_apply_once(
    adopted: asyncpg.Connection, ehg_dsn: str
) -> None:
    sd_id, key = await new_sd(adopted)
    session = await claim(adopted, sd_id)
    for version, handoff in enumerate(HANDOFFS[:2], start=1):
        assert (await call(adopted, handoff, sd_id, context(expected_version=version),
                           session_id=session))["success"]  # fmt: skip
    theirs = await connect(ehg_dsn)
    ours = await connect(ehg_dsn, search_path="leo, public")
    try:
        # Ours holds its transaction open; their RPC arrives and is refused by the lock.
        tx = ours.transaction()
        await tx.start()
        mine = await call(ours, "EXEC-TO-PLAN", sd_id, context(expected_version=3),
                          session_id=session)  # fmt: skip
        assert mine["success"] is True
        rpc = await asyncio.wait_for(
            theirs.fetchval(
                "SELECT fn_atomic_exec_to_plan_transition(p_sd_id => $1, p_prd_id => NULL, "
                "p_session_id => 'their-session', p_request_id => $2)",
                key,
                new_request_id(),
            ),
            10,
        )
        assert rpc["code"] == "CONCURRENT_LOCK"
        await tx.commit()
    finally:
        await theirs.close()
        await ours.close()
    assert GATE_SUMMARY["passed"] is True
    count = await adopted.fetchval(
        "SELECT count(*) FROM public.sd_transition_audit a JOIN public.strategic_directives_v2 sd "
        "ON sd.uuid_id = a.sd_id WHERE sd.id = $1 AND a.transition_type = 'EXEC_TO_PLAN'",
        sd_id,
    )
    assert count == 1


async def test_a_worker_role_reaches_leo_objects_only(
    ehg: asyncpg.Connection, ehg_dsn: str, migrated_db: str
) -> None:
    """A login in leo_worker (NOBYPASSRLS, no rights on their tables) runs LEO through schema
    leo: its views and functions work; their tables and LEO's side tables refuse it."""
    admin = await connect(migrated_db)  # the session's `leo db migrate` created leo_worker
    try:
        await admin.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
            "'adopt_worker_login') THEN CREATE ROLE adopt_worker_login LOGIN IN ROLE leo_worker; "
            "END IF; END $$"
        )
    finally:
        await admin.close()
    await register_actor(ehg)
    await adopt(ehg, actor=LEO_ACTOR)  # grants leo_worker its rights on schema leo
    sd_id, key = await new_sd(ehg)
    worker = await connect(dsn_with(ehg_dsn, user="adopt_worker_login"), search_path="leo, public")
    try:
        session = await claim(worker, key)
        result = await call(worker, "LEAD-TO-PLAN", sd_id, context(), session_id=session)
        assert result["success"] is True, result
        assert (
            await worker.fetchval(
                "SELECT current_phase FROM strategic_directives_v2 WHERE id = $1", sd_id
            )
            == "PLAN_PRD"
        )
        for sql in (
            "SELECT count(*) FROM public.strategic_directives_v2",
            "SELECT count(*) FROM public.sd_transition_audit",
            "INSERT INTO leo.handoff_requests (request_id, handoff_id, sd_id) "
            "VALUES ('x', gen_random_uuid(), 'y')",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await worker.execute(sql)
    finally:
        await worker.close()
