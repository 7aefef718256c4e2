"""A worker killed with SIGKILL in the middle of a handoff: a new worker finishes it, and no
agent whose result was recorded runs again, and no row is written twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg

from leo.api import LeoClient
from leo.domain.handoff_messages import HandoffOptions
from leo.domain.handoffs import HandoffType
from leo.infra.settings import Settings
from tests.support.factories import add_agent, create_sd

ROOT = Path(__file__).resolve().parents[2]


def start_worker(settings: Settings, queue: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LEO_DATABASE_URL": settings.database_url or "",
        "TEMPORAL_ADDRESS": settings.temporal_address or "",
        "LEO_TASK_QUEUE": queue,
    }
    return subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=env)


async def wait_for(pool: asyncpg.Pool, sql: str, *args: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await pool.fetchval(sql, *args):
        assert time.monotonic() < deadline, f"timed out waiting for: {sql}"
        await asyncio.sleep(0.1)


async def test_killed_worker_mid_handoff_is_replaced_without_rerunning_recorded_work(
    leo: LeoClient, settings: Settings, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    queue = f"leo-crash-{uuid.uuid4().hex[:8]}"
    fast = await add_agent(db_pool, metadata={"seconds": 0.2, "marker_dir": str(tmp_path / "fast")})
    slow = [
        await add_agent(
            db_pool,
            depends_on=[fast],
            metadata={"seconds": 4, "marker_dir": str(tmp_path / f"slow{i}")},
        )
        for i in range(2)
    ]
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    crash_client = LeoClient(leo.client, db_pool, queue)

    worker = start_worker(settings, queue)
    try:
        handle = await crash_client.start_handoff(
            HandoffType.LEAD_TO_PLAN,
            sd.id,
            options=HandoffOptions(extra_sub_agents=[fast, *slow]),
        )
        # Kill it once the fast agent is recorded in the workflow's history and the slow ones
        # (its dependants, scheduled only then) are running.
        async with asyncio.timeout(60):
            while not all((tmp_path / f"slow{i}").exists() for i in range(2)):
                await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        replacement = start_worker(settings, queue)
        try:
            result = await asyncio.wait_for(crash_client.wait(handle), timeout=90)
        finally:
            replacement.terminate()
            replacement.wait(15)
    finally:
        if worker.poll() is None:
            worker.kill()

    assert result.accepted, result.issues
    assert len(list((tmp_path / "fast").iterdir())) == 1, "a recorded agent ran again"
    rows = await db_pool.fetch(
        "SELECT sub_agent_code, count(*) AS n FROM sub_agent_execution_results WHERE sd_id = $1 GROUP BY 1",
        sd.id,
    )
    assert {r["sub_agent_code"]: r["n"] for r in rows} == dict.fromkeys(
        ["VALIDATION", "RISK", fast, *slow], 1
    )
    audit = await db_pool.fetch("SELECT status FROM sd_transition_audit WHERE sd_id = $1", sd.id)
    assert [a["status"] for a in audit] == ["completed"]
    version = await db_pool.fetchval(
        "SELECT transition_version FROM strategic_directives_v2 WHERE id = $1", sd.id
    )
    assert version == 2
