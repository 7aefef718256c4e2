"""Concurrent transitions of one SD: exactly one applies, every other caller gets a stable code."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from asyncpg.pool import PoolConnectionProxy

from tests.support.db import audit_rows, call, context, handoff_rows, sd_row, snapshot
from tests.support.factories import START_STATE, create_sd

CALLERS = 50
STABLE_REFUSALS = {"CONCURRENT_LOCK", "VERSION_CONFLICT", "INVALID_PHASE"}


@asynccontextmanager
async def connections(pool: asyncpg.Pool, n: int) -> AsyncIterator[list[PoolConnectionProxy]]:
    # Held all at once, so every caller really has its own backend.
    conns: list[PoolConnectionProxy] = []
    try:
        for _ in range(n):
            conns.append(await pool.acquire())
        yield conns
    finally:
        for conn in conns:
            await pool.release(conn)


@asynccontextmanager
async def open_transaction(pool: asyncpg.Pool) -> AsyncIterator[PoolConnectionProxy]:
    """A connection inside a transaction that the test commits by leaving the block."""
    async with pool.acquire() as conn, conn.transaction():
        yield conn


@pytest.mark.parametrize("handoff", list(START_STATE))
async def test_fifty_concurrent_calls_apply_one_transition(
    db_pool: asyncpg.Pool, handoff: str
) -> None:
    sd = await create_sd(db_pool, ready_for=handoff, uuid_id=True, stories=[{}, {}])
    assert sd.id != sd.sd_key

    async with connections(db_pool, CALLERS) as conns:
        pids = await asyncio.gather(*(c.fetchval("SELECT pg_backend_pid()") for c in conns))
        assert len(set(pids)) == CALLERS
        # Half address the SD by its canonical id, half by its sd_key; each is its own request.
        results = await asyncio.gather(
            *(
                call(conn, handoff, sd.id if n % 2 else sd.sd_key, context(expected_version=1))
                for n, conn in enumerate(conns)
            )
        )

    applied = [r for r in results if r["success"] and not r["idempotent_hit"]]
    assert len(applied) == 1, [r["code"] for r in results]
    [winner] = applied
    for result in results:
        if result is winner:
            continue
        if handoff == "LEAD-FINAL-APPROVAL" and result["success"]:
            # Approving a completed SD is an idempotent success that returns the first outcome.
            assert result["already_completed"] is True
            assert result["audit_id"] == winner["audit_id"]
        else:
            assert result["success"] is False
            assert result["code"] in STABLE_REFUSALS, result

    assert (await sd_row(db_pool, sd.id))["transition_version"] == 2
    audits = await audit_rows(db_pool, sd.id)
    assert [a["status"] for a in audits] == ["completed"]
    assert str(audits[0]["id"]) == winner["audit_id"]
    assert (
        await db_pool.fetchval(
            "SELECT count(*) FROM sd_transition_audit WHERE sd_id = $1 AND status = 'in_progress'",
            sd.id,
        )
        == 0
    )
    handoffs = await handoff_rows(db_pool, sd.id)
    assert [(h["handoff_type"], h["status"]) for h in handoffs] == [(handoff, "accepted")]


async def test_a_transition_in_flight_makes_others_refuse_at_once_whatever_the_spelling(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(db_pool, ready_for="EXEC-TO-PLAN", uuid_id=True, stories=[{}])
    async with open_transaction(db_pool) as holder:
        first = await call(holder, "EXEC-TO-PLAN", sd.id, context())
        assert first["success"] is True, first
        before = await snapshot(db_pool, sd.id)
        # The lock is keyed on the canonical id, so the sd_key spelling meets it too, and
        # the caller is told at once instead of queueing behind the row lock.
        for spelling in (sd.sd_key, sd.id):
            busy = await asyncio.wait_for(
                call(db_pool, "EXEC-TO-PLAN", spelling, context()), timeout=5
            )
            assert busy["success"] is False
            assert busy["code"] == "CONCURRENT_LOCK"
            assert busy["sd_id"] == sd.id
        assert await snapshot(db_pool, sd.id) == before
    after = await call(db_pool, "EXEC-TO-PLAN", sd.sd_key, context())
    assert after["code"] == "INVALID_PHASE"


async def test_one_request_id_in_flight_on_two_sds_gets_a_structured_answer(
    db_pool: asyncpg.Pool,
) -> None:
    first = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    second = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    ctx = context()
    async with open_transaction(db_pool) as holder:
        assert (await call(holder, "LEAD-TO-PLAN", first.id, ctx))["success"] is True
        # The unique request_id would make this call wait and then die with a bare
        # unique_violation; it is refused at once instead, and retrying is safe.
        busy = await asyncio.wait_for(call(db_pool, "LEAD-TO-PLAN", second.id, ctx), timeout=5)
        assert busy["code"] == "CONCURRENT_LOCK"
    retried = await call(db_pool, "LEAD-TO-PLAN", second.id, ctx)
    assert retried["code"] == "INVALID_INPUT"
    assert first.id in retried["error"]
    assert await audit_rows(db_pool, second.id) == []
    assert (await sd_row(db_pool, second.id))["transition_version"] == 1


async def wait_until_blocked(pool: asyncpg.Pool, pid: int, timeout: float = 5.0) -> None:
    """Until backend `pid` is waiting for a lock (so the race is set up, not assumed)."""
    # Polling is the only way: PostgreSQL has no notification for "started waiting".
    async with asyncio.timeout(timeout):
        while True:
            waiting = await pool.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
            )
            if waiting:
                return
            await asyncio.sleep(0.01)


async def test_a_prd_changed_by_a_concurrent_writer_is_checked_after_its_commit(
    db_pool: asyncpg.Pool,
) -> None:
    # Someone puts the PRD on hold while PLAN-TO-LEAD starts. The precondition must see the
    # committed "on_hold", not the "verification" it read before it had the row locked, or
    # the transition would overwrite the hold with "completed".
    sd = await create_sd(db_pool, ready_for="PLAN-TO-LEAD")
    async with db_pool.acquire() as writer, db_pool.acquire() as caller:
        tx = writer.transaction()
        await tx.start()
        try:
            await writer.execute(
                "UPDATE product_requirements_v2 SET status = 'on_hold' WHERE id = $1", sd.prd_id
            )
            pid = await caller.fetchval("SELECT pg_backend_pid()")
            pending = asyncio.create_task(call(caller, "PLAN-TO-LEAD", sd.id, context()))
            await wait_until_blocked(db_pool, pid)
        finally:
            await tx.commit()
        result = await asyncio.wait_for(pending, 5)

    assert result["code"] == "INVALID_PHASE", result
    assert result["actual"]["prd_status"] == "on_hold"
    assert (
        await db_pool.fetchval(
            "SELECT status FROM product_requirements_v2 WHERE id = $1", sd.prd_id
        )
        == "on_hold"
    )
    assert await audit_rows(db_pool, sd.id) == []
