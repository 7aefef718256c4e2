"""A worker for the workflow tests: the production worker, on its own task queue."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from temporalio.client import Client

from leo.api import LeoClient
from worker import build_worker


@pytest.fixture(scope="session")
async def task_queue(client: Client, db_pool: asyncpg.Pool) -> AsyncIterator[str]:
    queue = f"leo-test-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, db_pool, task_queue=queue):
        yield queue


@pytest.fixture(scope="session")
def leo(client: Client, db_pool: asyncpg.Pool, task_queue: str) -> LeoClient:
    return LeoClient(client, db_pool, task_queue)
