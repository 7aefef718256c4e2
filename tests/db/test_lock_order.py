"""One lock order (the SD row, then its PRD and stories), and deadlocks that surface as such."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from tests.support.db import audit_rows, call, context, sd_row
from tests.support.factories import create_sd


async def wait_for_lock_wait(pool: asyncpg.Pool, pid: int, timeout: float = 10) -> None:
    """Until backend `pid` waits on a lock."""
    deadline = time.monotonic() + timeout
    while not await pool.fetchval(
        "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
    ):
        assert time.monotonic() < deadline, f"backend {pid} never waited on a lock"
        await asyncio.sleep(0.02)


async def test_exec_report_locks_the_sd_before_its_stories(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for="EXEC-TO-PLAN", stories=[{"status": "in_progress"}])
    [story] = sd.story_keys
    async with db_pool.acquire() as holder, db_pool.acquire() as reporter:
        tx = holder.transaction()
        await tx.start()
        await holder.execute(
            "SELECT 1 FROM strategic_directives_v2 WHERE id = $1 FOR UPDATE", sd.id
        )
        report = asyncio.create_task(
            reporter.fetchval(
                "SELECT fn_record_exec_report(p_sd_id => $1, p_session_id => NULL, "
                "p_request_id => $2, p_summary => 'done', p_evidence => $3)",
                sd.id,
                f"lock-order-{sd.id}",
                {"test_results": {story: "passing"}, "commits": ["abc123"]},
            )
        )
        await wait_for_lock_wait(db_pool, reporter.get_server_pid())

        # The report waits for the SD and holds nothing of the SD's stories: a transition,
        # which locks the SD first and then the stories, cannot deadlock with it.
        async with db_pool.acquire() as probe, probe.transaction():
            locked = await probe.fetch(
                "SELECT story_key FROM user_stories WHERE sd_id = $1 FOR UPDATE NOWAIT", sd.id
            )
        assert [r["story_key"] for r in locked] == [story]

        await tx.rollback()
        result = await asyncio.wait_for(report, 10)
    assert result["success"] is True, result


async def test_a_deadlock_inside_a_transition_surfaces_as_sqlstate_40p01(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(db_pool, ready_for="EXEC-TO-PLAN", stories=[{"status": "in_progress"}])
    async with db_pool.acquire() as blocker, db_pool.acquire() as caller:
        tx = blocker.transaction()
        await tx.start()
        # The blocker must not be the one PostgreSQL aborts; the transition is. (Without the
        # privilege to set this, the first waiter, the call, is the one that detects it.)
        if await blocker.fetchval("SELECT current_setting('is_superuser')") == "on":
            await blocker.execute("SET LOCAL deadlock_timeout = '20s'")
        await blocker.execute("SELECT 1 FROM user_stories WHERE sd_id = $1 FOR UPDATE", sd.id)
        transition = asyncio.create_task(call(caller, "EXEC-TO-PLAN", sd.id, context()))
        await wait_for_lock_wait(db_pool, caller.get_server_pid())
        # Now the call holds the SD and waits for the stories; the blocker asks for the SD.
        sd_lock = asyncio.create_task(
            blocker.execute("SELECT 1 FROM strategic_directives_v2 WHERE id = $1 FOR UPDATE", sd.id)
        )
        with pytest.raises(asyncpg.exceptions.DeadlockDetectedError) as deadlock:
            await asyncio.wait_for(transition, 30)
        await asyncio.wait_for(sd_lock, 10)
        await tx.rollback()

    # Not a failed transition: nothing persists, not even a failed audit row, and a retry may
    # apply it. The message says where it happened.
    assert deadlock.value.sqlstate == "40P01"
    assert 'EXEC-TO-PLAN at step "1. Transition user stories"' in str(deadlock.value)
    assert await audit_rows(db_pool, sd.id) == []
    assert (await sd_row(db_pool, sd.id))["current_phase"] == "EXEC"
    retried = await call(db_pool, "EXEC-TO-PLAN", sd.id, context())
    assert retried["success"] is True, retried
