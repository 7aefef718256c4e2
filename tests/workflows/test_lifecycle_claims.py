"""SD-LIFECYCLE notices a lost claim, starts no handoff without it, and names its SD."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from db.pool import Executor
from leo.api import LeoClient, LifecycleClient
from leo.domain.handoffs import lifecycle_workflow_id
from leo.domain.lifecycle_messages import ApprovalInput, LifecycleInput, LifecycleStatus
from tests.support.factories import seed_accepted_handoff
from tests.workflows.test_sd_lifecycle import REPORT, lifecycle_sd, wait_until
from workflows.sd_lifecycle import SdLifecycleWorkflow


async def status_when(
    lifecycle: LifecycleClient, sd_id: str, claim: str, timeout: float = 30
) -> LifecycleStatus:
    async with asyncio.timeout(timeout):
        while True:
            status = await lifecycle.status(sd_id)
            if status.claim == claim:
                return status
            await asyncio.sleep(0.1)


async def take_over(pool: Executor, sd_id: str, stale: str, thief: str) -> None:
    """Another session takes the SD over once `stale`'s heartbeat is older than 300 s."""
    await pool.execute(
        "UPDATE claude_sessions SET heartbeat_at = now() - interval '301 seconds' "
        "WHERE session_id = $1",
        stale,
    )
    taken = await pool.fetchval("SELECT claim_sd(p_sd_id => $1, p_session_id => $2)", sd_id, thief)
    assert taken["success"] and taken["took_over_from"] == stale, taken


async def test_a_lost_claim_shows_stops_handoffs_and_reclaim_resumes(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    lifecycle = LifecycleClient(leo)
    sd = await lifecycle_sd(db_pool, ready_for="EXEC-TO-PLAN", stories=[{"status": "in_progress"}])
    await seed_accepted_handoff(db_pool, sd.id, "PLAN-TO-EXEC")
    handle = await lifecycle.start(sd.id, session_id="session-bot", claim_heartbeat_seconds=0.5)
    status = await wait_until(lifecycle, sd.id, "exec_complete")
    assert status.claim == "held by session-bot"

    await take_over(db_pool, sd.id, "session-bot", "session-human")
    status = await status_when(lifecycle, sd.id, "claim lost to session-human")

    # EXEC's report is still taken, but EXEC-TO-PLAN does not start without the claim.
    await lifecycle.report_exec_complete(sd.id, REPORT)
    status = await wait_until(lifecycle, sd.id, "reclaim")
    assert status.current_step is not None and status.current_step.value == "EXEC-TO-PLAN"
    # Waiting for reclaim means the workflow task that took the report has completed: a child
    # start would be in the lifecycle's history now. History and describe are consistent reads
    # (visibility is not, so a count there could pass only because it lags).
    history = await handle.fetch_history()
    children = [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for e in history.events
        if e.HasField("start_child_workflow_execution_initiated_event_attributes")
    ]
    assert f"EXEC-TO-PLAN:{sd.id}" not in children, children
    with pytest.raises(RPCError) as not_found:
        await leo.client.get_workflow_handle(f"EXEC-TO-PLAN:{sd.id}").describe()
    assert not_found.value.status == RPCStatusCode.NOT_FOUND
    assert (
        await db_pool.fetchval(
            "SELECT current_phase FROM strategic_directives_v2 WHERE id = $1", sd.id
        )
        == "EXEC"
    )

    # While the other session's claim is live, reclaim is refused, saying by whom.
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await lifecycle.reclaim(sd.id)
    assert "session-human" in str(refused.value.cause)

    await db_pool.fetchval("SELECT release_sd(p_session_id => 'session-human')")
    ack = await lifecycle.reclaim(sd.id, reason="the human is done")
    assert ack.accepted and "claimed again by session-bot" in ack.detail
    status = await wait_until(lifecycle, sd.id, "approval")
    assert status.claim == "held by session-bot"
    assert [r.step.value for r in status.steps][-2:] == ["EXEC-TO-PLAN", "PLAN-TO-LEAD"]
    assert status.steps[-2].outcome == "accepted"
    await handle.cancel()


async def test_reclaim_is_refused_while_the_claim_is_held(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    lifecycle = LifecycleClient(leo)
    sd = await lifecycle_sd(db_pool)
    handle = await lifecycle.start(sd.id, session_id="session-keeps")
    await wait_until(lifecycle, sd.id, "exec_complete")

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await lifecycle.reclaim(sd.id)
    assert f"the lifecycle of {sd.sd_key} has not lost its claim" in str(refused.value.cause)
    await handle.cancel()


async def test_an_early_approve_is_refused_naming_the_sd(
    client: Client, task_queue: str, db_pool: asyncpg.Pool
) -> None:
    # The approval arrives with the start, before the lifecycle has loaded its SD.
    sd = await lifecycle_sd(db_pool)
    start = WithStartWorkflowOperation(
        SdLifecycleWorkflow.run,
        LifecycleInput(sd_id=sd.id, session_id="session-early"),
        id=lifecycle_workflow_id(sd.id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await client.execute_update_with_start_workflow(
            "approve",
            ApprovalInput(approver="lead"),
            start_workflow_operation=start,
        )
    message = str(refused.value.cause)
    assert "None" not in message
    assert f"the lifecycle of {sd.id} is at its start, before its first step" in message
    await (await start.workflow_handle()).cancel()
