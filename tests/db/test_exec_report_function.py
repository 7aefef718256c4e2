"""fn_record_exec_report against a real PostgreSQL: the report is gate evidence, so it takes the
SD's lock and bumps its version (issue 17 item 3), and EXEC-TO-PLAN keeps what it reported."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from tests.support.db import call, context
from tests.support.factories import create_sd


async def report(
    db: asyncpg.Pool | asyncpg.Connection, sd_id: str, tests: dict[str, str], **evidence: Any
) -> Any:
    return await db.fetchval(
        "SELECT fn_record_exec_report(p_sd_id => $1, p_session_id => NULL, p_request_id => $2, "
        "p_summary => 'done', p_evidence => $3)",
        sd_id,
        f"report-{uuid.uuid4()}",
        {"test_results": tests, **evidence},
    )


async def version(pool: asyncpg.Pool, sd_id: str) -> int:
    value: int = await pool.fetchval(
        "SELECT transition_version FROM strategic_directives_v2 WHERE id = $1", sd_id
    )
    return value


async def test_a_handoff_judged_before_the_report_cannot_commit_after_it(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(
        db_pool, ready_for="EXEC-TO-PLAN", stories=[{"status": "in_progress", "e2e_test_path": "t"}]
    )
    judged_at = await version(db_pool, sd.id)  # what a handoff's snapshot read
    recorded = await report(db_pool, sd.id, {sd.story_keys[0]: "failing"}, commits=["abc"])
    assert recorded["success"] and recorded["transition_version"] == judged_at + 1, recorded

    stale = await call(db_pool, "EXEC-TO-PLAN", sd.id, context(expected_version=judged_at))
    assert stale["code"] == "VERSION_CONFLICT", stale
    # A repeat of the same report changes nothing, the version included.
    again = await db_pool.fetchval(
        "SELECT fn_record_exec_report(p_sd_id => $1, p_session_id => NULL, p_request_id => $2, "
        "p_summary => 'done', p_evidence => '{}')",
        sd.id,
        (await db_pool.fetchval("SELECT request_id FROM sd_exec_reports WHERE sd_id = $1", sd.id)),
    )
    assert again["idempotent_hit"], again
    assert await version(db_pool, sd.id) == judged_at + 1


async def test_the_report_waits_for_a_transition_in_progress(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for="EXEC-TO-PLAN", stories=[{"status": "ready"}])
    async with db_pool.acquire() as holder:
        tx = holder.transaction()
        await tx.start()
        # What a transition of this SD holds while it runs.
        await holder.execute("SELECT pg_advisory_xact_lock(leo_sd_lock_key($1))", sd.id)
        pending = asyncio.create_task(report(db_pool, sd.id, {sd.story_keys[0]: "passing"}))
        await asyncio.sleep(1.0)
        assert not pending.done(), "the report wrote while a transition held the SD's lock"
        await tx.rollback()
    async with asyncio.timeout(10):
        result = await pending
    assert result["success"], result


async def test_exec_to_plan_keeps_a_test_reported_failing(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(
        db_pool,
        ready_for="EXEC-TO-PLAN",
        stories=[
            {"status": "in_progress", "e2e_test_path": "e2e/a.spec.ts"},
            {"status": "in_progress", "e2e_test_path": "e2e/b.spec.ts"},
        ],
    )
    failing, created = sd.story_keys
    recorded = await report(db_pool, sd.id, {failing: "failing", created: "created"})
    assert recorded["success"], recorded

    moved = await call(
        db_pool, "EXEC-TO-PLAN", sd.id, context(expected_version=await version(db_pool, sd.id))
    )
    assert moved["success"], moved
    rows = await db_pool.fetch(
        "SELECT story_key, e2e_test_status FROM user_stories WHERE sd_id = $1", sd.id
    )
    assert {r["story_key"]: r["e2e_test_status"] for r in rows} == {
        failing: "failing",
        created: "passing",
    }
