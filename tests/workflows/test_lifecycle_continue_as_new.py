"""A lifecycle waiting a long time (for LEAD's approval) continues as new instead of growing
one history without bound, keeps its claim across runs, and finishes with its whole record.

The server's suggestion threshold is lowered so that a fast claim heartbeat reaches it in
seconds; with the defaults (4096 events, 120 s heartbeats) that is about four days of waiting.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path

import asyncpg
from temporalio.client import Client

from leo.api import LeoClient, LifecycleClient
from leo.dev_stack import TemporalDevServer, free_port
from leo.domain.handoffs import Step
from leo.infra.client import connect_client
from leo.infra.settings import Settings
from leo.runtime import build_worker
from tests.support.factories import create_sd, seed_accepted_handoff


async def test_long_approval_wait_continues_as_new_and_keeps_the_claim(
    db_pool: asyncpg.Pool,
) -> None:
    server = TemporalDevServer(
        Path(tempfile.mkdtemp(prefix="leo-can-")),
        port=free_port(),
        headless=True,
        dynamic_config=("limit.historyCount.suggestContinueAsNew=40",),
    ).start()
    try:
        client: Client = await connect_client(Settings(temporal_address=server.address))
        queue = f"leo-can-{uuid.uuid4().hex[:6]}"
        sd = await create_sd(
            db_pool,
            ready_for="LEAD-FINAL-APPROVAL",
            stories=[{"status": "completed"}],
            sd_type="infrastructure",
        )
        await db_pool.execute(
            "INSERT INTO retrospectives (sd_id, quality_score) VALUES ($1, 90)", sd.id
        )
        await seed_accepted_handoff(db_pool, sd.id, "PLAN-TO-LEAD")
        await db_pool.execute(
            "UPDATE user_stories SET validation_status = 'validated' WHERE sd_id = $1", sd.id
        )
        lifecycle = LifecycleClient(LeoClient(client, db_pool, queue))

        async with build_worker(client, db_pool, task_queue=queue):
            handle = await lifecycle.start(
                sd.id, session_id="session-long", claim_heartbeat_seconds=0.2
            )
            async with asyncio.timeout(60):
                while (
                    status := await lifecycle.status(sd.id)
                ).runs < 3 or status.waiting_for != "approval":
                    await asyncio.sleep(0.3)
            holder = await db_pool.fetchval(
                "SELECT claiming_session_id FROM strategic_directives_v2 WHERE id = $1", sd.id
            )
            assert holder == "session-long"
            assert (
                await db_pool.fetchval(
                    "SELECT count(*) FROM claude_sessions WHERE session_id = 'session-long' AND status = 'active'"
                )
                == 1
            )

            await lifecycle.approve(sd.id, approver="lead", reason="after a long wait")
            final = await lifecycle.wait(handle)

        assert final.state == "completed" and final.runs >= 3
        assert [(r.step, r.outcome) for r in final.steps] == [
            (Step.LEAD_TO_PLAN, "already_done"),
            (Step.PLAN_TO_EXEC, "already_done"),
            (Step.EXEC_WORK, "already_done"),
            (Step.EXEC_TO_PLAN, "already_done"),
            (Step.PLAN_TO_LEAD, "already_done"),
            (Step.LEAD_APPROVAL, "approved"),
            (Step.LEAD_FINAL_APPROVAL, "accepted"),
        ]
        runs = [w async for w in client.list_workflows(f"WorkflowId = '{handle.id}'")]
        assert len(runs) >= 3
        assert (
            await db_pool.fetchval(
                "SELECT status FROM strategic_directives_v2 WHERE id = $1", sd.id
            )
            == "completed"
        )
    finally:
        server.stop()
