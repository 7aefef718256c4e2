"""What a benchmark runs against (`BenchEnv`), and how `python -m bench` builds it: a fresh
embedded stack (`leo.dev_stack`) wired by the production factory (`leo.runtime`), plus a
second production worker in its own process when a benchmark asks for one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench.floor import build_floor_worker
from bench.machine import PROJECT_ROOT
from db.migrate import migrate
from db.pool import connect
from leo.api import LeoClient
from leo.dev_stack import Stack, free_port, start_stack
from leo.infra.settings import Settings
from leo.runtime import open_runtime


@dataclass
class BenchEnv:
    """What a benchmark runs against. `stack` is None when borrowed from the test suite."""

    client: Client
    pool: asyncpg.Pool
    task_queue: str
    floor_task_queue: str
    database_url: str
    temporal_address: str
    stack: Stack | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def leo(self, task_queue: str | None = None, *, eager_start: bool = True) -> LeoClient:
        # The bench's workers share this client: handoffs start eagerly on them.
        return LeoClient(
            self.client, self.pool, task_queue or self.task_queue, eager_start=eager_start
        )

    def pids(self) -> dict[str, int]:
        """The server processes of an embedded stack (for CPU accounting)."""
        found: dict[str, int] = {}
        if self.stack is not None and self.stack.temporal and self.stack.temporal.process:
            found["temporal"] = self.stack.temporal.process.pid
        if self.stack is not None and self.stack.postgres is not None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                pidfile = self.stack.postgres.pgdata / "postmaster.pid"
                found["postgres"] = int(pidfile.read_text().splitlines()[0])
        return found


@contextlib.asynccontextmanager
async def bench_env(*, worker_pool_size: int = 20) -> AsyncIterator[BenchEnv]:
    """A fresh embedded stack in a temp folder (PostgreSQL + tuned, headless Temporal dev
    server), migrated, with one production worker and one floor worker in this process."""
    data_dir = Path(tempfile.mkdtemp(prefix="leo-bench-"))
    stack = await asyncio.to_thread(
        start_stack,
        database_url=None,
        temporal_address=None,
        data_dir=data_dir,
        temporal_port=free_port(),
        headless=True,
    )
    try:
        conn = await connect(stack.database_url)
        try:
            await migrate(conn)
            pg_version = await conn.fetchval("SHOW server_version")
            sync_commit = await conn.fetchval("SHOW synchronous_commit")
        finally:
            await conn.close()
        settings = Settings(
            database_url=stack.database_url, temporal_address=stack.temporal_address
        )
        queue = f"leo-bench-{uuid.uuid4().hex[:8]}"
        floor_queue = f"bench-floor-{uuid.uuid4().hex[:8]}"
        # The production worker's pool size (leo.runtime), plus room for the benchmark.
        async with (
            open_runtime(settings, pool_max=worker_pool_size + 10) as runtime,
            runtime.worker(queue),
            build_floor_worker(runtime.client, floor_queue),
        ):
            yield BenchEnv(
                client=runtime.client,
                pool=runtime.pool,
                task_queue=queue,
                floor_task_queue=floor_queue,
                database_url=stack.database_url,
                temporal_address=stack.temporal_address,
                stack=stack,
                notes={"postgres": pg_version, "synchronous_commit": sync_commit},
            )
    finally:
        await asyncio.to_thread(stack.stop)
        shutil.rmtree(data_dir, ignore_errors=True)


class WorkerProcess:
    """A second production worker: `python worker.py` in its own process, same task queue."""

    def __init__(self, env: BenchEnv, task_queue: str | None = None) -> None:
        self.env = env
        self.task_queue = task_queue or env.task_queue
        self.process: asyncio.subprocess.Process | None = None
        self.log = Path(tempfile.mkstemp(prefix="leo-bench-worker-", suffix=".log")[1])

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def _pollers(self, kind: TaskQueueType.ValueType) -> set[str]:
        response = await self.env.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.env.client.namespace,
                task_queue=TaskQueue(name=self.task_queue),
                task_queue_type=kind,
            )
        )
        return {p.identity for p in response.pollers}

    async def __aenter__(self) -> WorkerProcess:
        env = {
            **os.environ,
            "LEO_DATABASE_URL": self.env.database_url,
            "TEMPORAL_ADDRESS": self.env.temporal_address,
            "LEO_TASK_QUEUE": self.task_queue,
            "PYTHONPATH": str(PROJECT_ROOT),
        }
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(PROJECT_ROOT / "worker.py"),
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        # Ready when its identity ("<pid>@host") polls both the workflow and activity queues.
        deadline = time.monotonic() + 60
        mine = f"{self.process.pid}@"
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise RuntimeError(f"second worker exited early; see {self.log}")
            wf = await self._pollers(TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
            act = await self._pollers(TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
            if any(i.startswith(mine) for i in wf) and any(i.startswith(mine) for i in act):
                return self
            await asyncio.sleep(0.2)
        raise RuntimeError(f"second worker did not start polling within 60 s; see {self.log}")

    async def __aexit__(self, *exc: object) -> None:
        if self.process is None:
            return
        if self.process.returncode is None:
            self.process.terminate()  # the worker shuts down gracefully on SIGTERM
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self.process = None
        self.log.unlink(missing_ok=True)
