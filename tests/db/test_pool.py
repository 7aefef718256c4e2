"""The pool sends nothing when a connection is released (issue 19, R3), except the ROLLBACK of a
transaction left open. Counted on the server: pg_stat_activity shows the last statement each
backend received, and whether it is still inside a transaction."""

from __future__ import annotations

import uuid

import asyncpg

from db.pool import create_pool
from tests.support.db import fetch_one


async def backend_activity(observer: asyncpg.Pool, pid: int) -> asyncpg.Record:
    # Read from another backend: what `pid` received last and the state it is in now.
    return await fetch_one(
        observer, "SELECT state, query FROM pg_stat_activity WHERE pid = $1", pid
    )


async def test_a_release_sends_no_statement(migrated_db: str, db_pool: asyncpg.Pool) -> None:
    pool = await create_pool(migrated_db, min_size=1, max_size=1)
    try:
        marker = f"SELECT 'release-{uuid.uuid4().hex}' AS marker"
        for _ in range(3):  # every release, not only the first
            async with pool.acquire() as conn:
                pid = conn.get_server_pid()
                await conn.fetchval(marker)
            activity = await backend_activity(db_pool, pid)
            # Nothing reached the server after our own statement: no reset query
            # (pg_advisory_unlock_all, CLOSE ALL, UNLISTEN *, RESET ALL).
            assert (activity["state"], activity["query"]) == ("idle", marker)
        # One backend served all three: the connection went back to the pool, not away.
        async with pool.acquire() as conn:
            assert conn.get_server_pid() == pid
    finally:
        await pool.close()


async def test_a_transaction_left_open_is_still_rolled_back_on_release(
    migrated_db: str, db_pool: asyncpg.Pool
) -> None:
    pool = await create_pool(migrated_db, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            pid = conn.get_server_pid()
            tx = conn.transaction()
            await tx.start()
            await conn.execute("CREATE TEMP TABLE leo_pool_probe (n int) ON COMMIT DROP")
            # Released without commit or rollback (a cancelled task can leave it so).
        activity = await backend_activity(db_pool, pid)
        assert (activity["state"], activity["query"]) == ("idle", "ROLLBACK")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT to_regclass('pg_temp.leo_pool_probe')") is None
    finally:
        await pool.close()
