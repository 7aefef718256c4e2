"""PostgreSQL stopped (`pg_ctl stop`, fast mode: every connection is cut) in the middle of a
handoff and started again ~2 s later: the handoff completes once the database is back, and
nothing is half-applied.

Each test runs its own embedded PostgreSQL in a temporary folder (the session database is never
stopped), migrates it, and runs an in-process worker whose asyncpg pool points at it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from db.migrate import migrate
from db.pool import connect, create_pool
from leo.api import LeoClient
from leo.dev_stack import EmbeddedPostgres
from leo.domain.handoff_messages import HandoffOptions
from leo.domain.handoffs import HandoffType
from leo.runtime import build_worker
from tests.support.db import fetch_one
from tests.support.factories import add_agent, create_sd
from tests.support.faults import marker_times, wait_until
from tests.support.invariants import assert_invariants

OUTAGE_SECONDS = 2.0
AGENT_SECONDS = 3.0


@dataclass
class OwnPostgres:
    """An embedded PostgreSQL that can be stopped and started again on the same data folder."""

    data_dir: Path
    server: EmbeddedPostgres | None = None

    async def start(self) -> str:
        assert self.server is None
        self.server = await asyncio.to_thread(EmbeddedPostgres(self.data_dir).start)
        assert self.server.url is not None
        return self.server.url

    async def stop(self) -> None:
        """`pg_ctl stop` (fast mode: open connections are cut)."""
        server, self.server = self.server, None
        if server is not None:
            await asyncio.to_thread(server.stop)


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[tuple[OwnPostgres, str]]:
    postgres = OwnPostgres(tmp_path / "pg")
    try:
        url = await postgres.start()
        conn = await connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield postgres, url
    finally:
        await postgres.stop()


async def assert_applied_once(pool: asyncpg.Pool, sd_id: str, agents: list[str]) -> None:
    """SD version +1, one completed audit row and none in progress, one accepted handoff row,
    one result row per agent: the transition happened exactly once, and whole."""
    audits = await pool.fetch("SELECT status FROM sd_transition_audit WHERE sd_id = $1", sd_id)
    assert [a["status"] for a in audits] == ["completed"]
    handoff_rows = await pool.fetch(
        "SELECT handoff_type, status FROM sd_phase_handoffs WHERE sd_id = $1", sd_id
    )
    assert [tuple(r) for r in handoff_rows] == [("LEAD-TO-PLAN", "accepted")]
    rows = await pool.fetch(
        "SELECT sub_agent_code, count(*) AS n FROM sub_agent_execution_results "
        "WHERE sd_id = $1 GROUP BY 1",
        sd_id,
    )
    assert {r["sub_agent_code"]: r["n"] for r in rows} == dict.fromkeys(agents, 1)
    row = await fetch_one(
        pool,
        "SELECT status, current_phase, transition_version FROM strategic_directives_v2 "
        "WHERE id = $1",
        sd_id,
    )
    assert tuple(row) == ("in_progress", "PLAN_PRD", 2)
    await assert_invariants(pool, [sd_id], one_result_per_agent=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    "stop_after",
    [0.3, AGENT_SECONDS - 0.2],
    ids=["while-the-agent-runs", "as-the-agent-writes-its-result"],
)
async def test_postgres_restarted_mid_handoff_completes_with_nothing_half_applied(
    own_postgres: tuple[OwnPostgres, str], client: Client, tmp_path: Path, stop_after: float
) -> None:
    postgres, url = own_postgres
    pool = await create_pool(url, min_size=2, max_size=10)
    queue = f"leo-pg-restart-{uuid.uuid4().hex[:8]}"
    markers = tmp_path / "slow-agent"
    try:
        slow = await add_agent(
            pool, metadata={"seconds": AGENT_SECONDS, "marker_dir": str(markers)}
        )
        sd = await create_sd(pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
        leo = LeoClient(client, pool, queue)
        async with build_worker(client, pool, task_queue=queue):
            handle = await leo.start_handoff(
                HandoffType.LEAD_TO_PLAN, sd.id, options=HandoffOptions(extra_sub_agents=[slow])
            )
            # The slow agent has started (the snapshot and the builtin agents are done).
            await wait_until(
                lambda: asyncio.to_thread(marker_times, markers), timeout=30, what="agent start"
            )
            await asyncio.sleep(stop_after)
            down = time.monotonic()
            await postgres.stop()
            await asyncio.sleep(OUTAGE_SECONDS)
            # Same data folder, so the same socket and URL; the pool reconnects on its own.
            assert await postgres.start() == url
            print(f"PostgreSQL was down for {time.monotonic() - down:.1f} s")
            async with asyncio.timeout(90):
                result = await leo.wait(handle)
        runs = marker_times(markers)
        print(f"the slow agent ran {len(runs)} time(s)")

        assert result.accepted, result.issues
        assert result.transition_version == 2
        await assert_applied_once(pool, sd.id, ["VALIDATION", "RISK", slow])
        # It ran again only if a run ended while the database was down (so its result could
        # not be recorded); never once its row existed.
        recorded = await pool.fetchval(
            "SELECT created_at FROM sub_agent_execution_results WHERE sd_id = $1 "
            "AND sub_agent_code = $2",
            sd.id,
            slow,
        )
        assert max(runs) <= recorded.timestamp()
    finally:
        await pool.close()


async def test_the_pool_reconnects_after_a_restart_without_help(
    own_postgres: tuple[OwnPostgres, str],
) -> None:
    """What the handoff above relies on: asyncpg drops a pooled connection the server closed
    and opens a new one on the next acquire; only the call that met the outage fails."""
    postgres, url = own_postgres
    pool = await create_pool(url, min_size=2, max_size=2)
    try:
        assert await pool.fetchval("SELECT 1") == 1
        await postgres.stop()
        with pytest.raises((OSError, asyncpg.PostgresError, asyncpg.InterfaceError)):
            await pool.fetchval("SELECT 1")
        assert await postgres.start() == url
        assert await pool.fetchval("SELECT 2") == 2
    finally:
        await pool.close()


@pytest.mark.slow
async def test_an_outage_longer_than_3_s_while_the_commit_records_does_not_reject_the_handoff(
    own_postgres: tuple[OwnPostgres, str], client: Client
) -> None:
    postgres, url = own_postgres
    pool = await create_pool(url, min_size=2, max_size=10)
    queue = f"leo-pg-outage-{uuid.uuid4().hex[:8]}"
    blocker = await connect(url)
    try:
        sd = await create_sd(pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
        leo = LeoClient(client, pool, queue)
        async with build_worker(client, pool, task_queue=queue):
            # Hold the commit step's INSERT of the result rows (reads still pass) so that the
            # outage starts exactly while it records them with the transition.
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("LOCK TABLE sub_agent_execution_results IN EXCLUSIVE MODE")
            handle = await leo.start_handoff(HandoffType.LEAD_TO_PLAN, sd.id)
            await wait_until(
                lambda: pool.fetchval(
                    "SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE '%fn_commit_handoff%'"
                ),
                timeout=30,
                what="the commit step waiting to record",
            )
            await postgres.stop()
            await asyncio.sleep(6)
            await postgres.start()
            async with asyncio.timeout(90):
                result = await leo.wait(handle)
        assert result.accepted, result.issues
        await assert_applied_once(pool, sd.id, ["VALIDATION", "RISK"])
    finally:
        await blocker.close()
        await pool.close()
