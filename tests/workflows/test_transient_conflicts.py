"""A deadlock while a handoff applies its transition is retried, not reported as a failure."""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from leo.domain.handoff_messages import HandoffOptions, HandoffProgress
from leo.domain.handoffs import HandoffType
from tests.support.factories import add_agent, create_sd, seed_accepted_handoff
from tests.support.workflows import start_handoff
from tests.workflows.test_exec_to_plan import INFRA_EVIDENCE


async def transition_waiting_pid(pool: asyncpg.Pool, timeout: float = 20) -> int:
    """The backend of the transition call once it waits on a lock."""
    deadline = time.monotonic() + timeout
    while True:
        pid = await pool.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            # The apply step's statement (fn_commit_handoff calls the transition function), or,
            # for handoffs started before issue 13, the transition function itself.
            "AND (query LIKE '%fn_commit_handoff%' OR query LIKE '%fn_atomic_exec_to_plan_transition%') "
            "AND query NOT LIKE '%preflight%'"
        )
        if pid is not None:
            return int(pid)
        assert time.monotonic() < deadline, "the transition never waited for the stories"
        await asyncio.sleep(0.02)


async def test_a_deadlock_in_the_transition_is_retried_and_the_handoff_accepted(
    client: Client, task_queue: str, db_pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    sd = await create_sd(
        db_pool,
        ready_for="EXEC-TO-PLAN",
        sd_type="infrastructure",
        metadata=INFRA_EVIDENCE,
        stories=[{"status": "in_progress"}],
    )
    await seed_accepted_handoff(db_pool, sd.id, "PLAN-TO-EXEC")
    slow = await add_agent(db_pool, metadata={"seconds": 2})
    handle = await start_handoff(
        client,
        task_queue,
        HandoffType.EXEC_TO_PLAN,
        sd.id,
        options=HandoffOptions(extra_sub_agents=[slow]),
    )
    async with asyncio.timeout(20):
        while (await handle.query("progress", result_type=HandoffProgress)).stage != "sub_agents":
            await asyncio.sleep(0.05)

    async with db_pool.acquire() as blocker:
        tx = blocker.transaction()
        await tx.start()
        if await blocker.fetchval("SELECT current_setting('is_superuser')") == "on":
            await blocker.execute("SET LOCAL deadlock_timeout = '20s'")  # the transition loses
        # Stories first, then the SD: the opposite of the transition's order, on purpose.
        await blocker.execute("SELECT 1 FROM user_stories WHERE sd_id = $1 FOR UPDATE", sd.id)
        await transition_waiting_pid(db_pool)
        await asyncio.wait_for(
            blocker.execute(
                "SELECT 1 FROM strategic_directives_v2 WHERE id = $1 FOR UPDATE", sd.id
            ),
            30,
        )
        await tx.rollback()

    result = await asyncio.wait_for(handle.result(), 60)

    assert result.accepted and result.new_phase == "EXEC_COMPLETE"
    audits = await db_pool.fetch("SELECT status FROM sd_transition_audit WHERE sd_id = $1", sd.id)
    assert [a["status"] for a in audits] == ["completed"]
    # The commit step failed once on the deadlock (retryable, saying so) and then succeeded: a
    # local activity, so its attempts are in its marker and its failure in the worker's log.
    history = await handle.fetch_history()
    commits = [
        json.loads(data.payloads[0].data)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and (data := e.marker_recorded_event_attributes.details.get("data")) is not None
        and data.payloads
    ]
    attempts = [
        m["attempt"] for m in commits if m.get("activity_type") == "decide_and_commit_handoff"
    ]
    assert attempts and attempts[-1] > 1, "the transition was not retried"
    failures = [
        r.exc_info[1]
        for r in caplog.records
        if r.exc_info
        and "decide_and_commit_handoff" in r.getMessage()
        and sd.id in str(r.exc_info[1])
    ]
    assert failures, "the deadlock was not reported"
    failure = failures[0]
    assert isinstance(failure, ApplicationError) and failure.type == "TRANSIENT_CONFLICT"
    assert "deadlock detected (SQLSTATE 40P01)" in str(failure)
