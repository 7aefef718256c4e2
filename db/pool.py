"""asyncpg pools with JSON codecs, the one way this project connects to PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# Anything a single statement can run on: a connection, a pooled connection, or the pool.
Executor = asyncpg.Connection | PoolConnectionProxy | asyncpg.Pool


async def init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out as Python values, so no call site hand-encodes JSON.
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


# No statement of ours runs for long: a stuck one (a lost connection, a lock held elsewhere)
# fails after this many seconds, so that the activity's attempt fails and is retried.
COMMAND_TIMEOUT_SECONDS = 30.0


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any
) -> asyncpg.Pool:
    kwargs.setdefault("command_timeout", COMMAND_TIMEOUT_SECONDS)
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init_connection, **kwargs
    )
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    return conn
