"""Fixtures of the adoption tests: a fresh EHG_Engineer-shaped database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from db.adopt.runner import adopt
from db.pool import connect
from leo.dev_stack import Stack
from tests.adopt.fixture import LEO_ACTOR, ehg_database, register_actor


@pytest.fixture
async def ehg_dsn(stack: Stack) -> AsyncIterator[str]:
    """The owner's DSN of a new EHG_Engineer-shaped database with the synthetic rows."""
    async with ehg_database(stack.database_url) as dsn:
        yield dsn


@pytest.fixture
async def ehg(ehg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to it as the owner (Supabase's `postgres`: not a superuser)."""
    conn = await connect(ehg_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def adopted(ehg: asyncpg.Connection, ehg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """The fixture adopted (actor registered, `leo db adopt` run), and a connection on it as LEO
    connects in adopt mode: schema leo first on the search_path."""
    await register_actor(ehg)
    await adopt(ehg, actor=LEO_ACTOR)
    conn = await connect(ehg_dsn, search_path="leo, public")
    try:
        yield conn
    finally:
        await conn.close()
