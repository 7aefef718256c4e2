"""Session fixtures: one real PostgreSQL and one real Temporal dev server for the whole run.

By default both come from the embedded stack (`leo.dev_stack`), in a temporary folder.
`LEO_DATABASE_URL` / `TEMPORAL_ADDRESS` point the suite at existing servers instead
(for example the docker-compose services, or a hosted PostgreSQL).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from db.migrate import migrate
from db.pool import connect, create_pool
from leo.api import LeoClient
from leo.dev_stack import Stack, free_port, start_stack
from leo.infra.client import connect_client
from leo.infra.settings import Settings
from leo.runtime import Runtime, load_gate_registry


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    data_dir = Path(tempfile.mkdtemp(prefix="leo-test-"))
    started = start_stack(
        database_url=os.environ.get("LEO_DATABASE_URL") or None,
        temporal_address=os.environ.get("TEMPORAL_ADDRESS") or None,
        data_dir=data_dir,
        temporal_port=free_port(),
        ui_port=free_port(),
    )
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def settings(stack: Stack) -> Settings:
    return Settings(
        database_url=stack.database_url,
        temporal_address=stack.temporal_address,
        data_dir=Path(tempfile.mkdtemp(prefix="leo-data-")),
    )


@pytest.fixture(scope="session")
async def migrated_db(stack: Stack) -> str:
    conn = await connect(stack.database_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return stack.database_url


@pytest.fixture(scope="session")
async def db_pool(migrated_db: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(migrated_db, min_size=2, max_size=60)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="session")
async def client(stack: Stack, settings: Settings) -> Client:
    return await connect_client(settings)


@pytest.fixture(scope="session")
def runtime(settings: Settings, client: Client, db_pool: asyncpg.Pool) -> Runtime:
    """The production wiring (`leo.runtime`) on the session's client and pool."""
    return Runtime(settings=settings, client=client, pool=db_pool, gates=load_gate_registry())


@pytest.fixture(scope="session")
async def task_queue(runtime: Runtime) -> AsyncIterator[str]:
    """A production worker for the whole session, on its own task queue."""
    queue = f"leo-test-{uuid.uuid4().hex[:8]}"
    async with runtime.worker(queue):
        yield queue


@pytest.fixture(scope="session")
def leo(client: Client, db_pool: asyncpg.Pool, task_queue: str) -> LeoClient:
    return LeoClient(client, db_pool, task_queue)
