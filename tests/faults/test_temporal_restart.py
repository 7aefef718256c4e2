"""The Temporal dev server stopped in the middle of a handoff and started again on the same
SQLite file and port: the worker (the same process, never restarted) reconnects by itself and
the handoff completes, with the database invariants intact.

The test runs its own dev server in a temporary folder on free ports; the session's server is
never touched. The database is the session's.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from leo.api import LeoClient
from leo.dev_stack import TemporalDevServer, free_port
from leo.domain.handoff_messages import HandoffOptions
from leo.domain.handoffs import HandoffType
from leo.infra.client import connect_client
from leo.infra.settings import Settings
from leo.runtime import build_worker
from tests.support.factories import add_agent, create_sd
from tests.support.faults import marker_times, start_dev_server, stop_dev_server, wait_until
from tests.support.invariants import assert_invariants

AGENT_SECONDS = 3.0
DOWN_SECONDS = 1.0


async def connect_when_healthy(address: str, timeout: float = 30) -> Client:
    """The dev server opens its port a moment before its frontend answers health checks."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await connect_client(Settings(temporal_address=address))
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@pytest.fixture
async def own_temporal(tmp_path: Path) -> AsyncIterator[TemporalDevServer]:
    server = TemporalDevServer(tmp_path / "temporal", port=free_port(), headless=True)
    await start_dev_server(server)
    try:
        yield server
    finally:
        await stop_dev_server(server)


@pytest.mark.slow
@pytest.mark.parametrize(
    "stop_after",
    [0.5, AGENT_SECONDS - 0.3],
    ids=["while-agents-run", "as-agents-complete"],
)
async def test_temporal_restarted_mid_handoff_on_its_sqlite_file_completes(
    own_temporal: TemporalDevServer, db_pool: asyncpg.Pool, tmp_path: Path, stop_after: float
) -> None:
    client = await connect_when_healthy(own_temporal.address)
    queue = f"leo-temporal-restart-{uuid.uuid4().hex[:8]}"
    dirs = [tmp_path / "slow-1", tmp_path / "slow-2"]
    agents = [
        await add_agent(db_pool, metadata={"seconds": AGENT_SECONDS, "marker_dir": str(d)})
        for d in dirs
    ]
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    leo = LeoClient(client, db_pool, queue)
    sqlite = own_temporal.data_dir / "temporal.sqlite"

    async with build_worker(client, db_pool, task_queue=queue):
        handle = await leo.start_handoff(
            HandoffType.LEAD_TO_PLAN, sd.id, options=HandoffOptions(extra_sub_agents=agents)
        )
        await wait_until(
            lambda: asyncio.to_thread(lambda: all(marker_times(d) for d in dirs)),
            timeout=30,
            what="both slow agents running",
        )
        await asyncio.sleep(stop_after)
        down = time.monotonic()
        await stop_dev_server(own_temporal)
        assert sqlite.exists()
        await asyncio.sleep(DOWN_SECONDS)
        # Same data folder (so the same SQLite file) and the same port.
        port = own_temporal.port
        await start_dev_server(own_temporal)
        assert own_temporal.port == port
        print(f"Temporal was down for {time.monotonic() - down:.1f} s")
        async with asyncio.timeout(90):
            result = await leo.wait(handle)
        print(f"handoff finished {time.monotonic() - down:.1f} s after the stop")

    assert result.accepted, result.issues
    assert result.transition_version == 2
    await assert_invariants(db_pool, [sd.id], one_result_per_agent=True)
    rows = {
        r["sub_agent_code"]: r["created_at"].timestamp()
        for r in await db_pool.fetch(
            "SELECT sub_agent_code, created_at FROM sub_agent_execution_results WHERE sd_id = $1",
            sd.id,
        )
    }
    assert set(rows) == {"VALIDATION", "RISK", *agents}
    for code, directory in zip(agents, dirs, strict=True):
        runs = marker_times(directory)
        print(f"{code} ran {len(runs)} time(s)")
        assert max(runs) <= rows[code], f"{code} ran again after its result was recorded"
    audit = await db_pool.fetch("SELECT status FROM sd_transition_audit WHERE sd_id = $1", sd.id)
    assert [a["status"] for a in audit] == ["completed"]
