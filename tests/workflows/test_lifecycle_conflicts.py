"""SD-LIFECYCLE beside other runs on its SD (issue 17 item 1): a handoff already running under the
child's id is waited for instead of failing the lifecycle; a claim is watched per SD and session."""

from __future__ import annotations

import asyncpg
import pytest
from temporalio.client import WorkflowFailureError

from leo.api import LeoClient, LifecycleClient
from leo.domain.handoff_messages import HandoffOptions
from leo.domain.handoffs import HandoffType, Step
from tests.support.factories import add_agent, seed_accepted_handoff
from tests.support.workflows import check_replay, patches_in, start_handoff
from tests.workflows.test_lifecycle_claims import status_when
from tests.workflows.test_sd_lifecycle import lifecycle_sd, wait_until
from workflows.sd_lifecycle_base import CHILD_CONFLICT


async def test_a_child_already_running_is_waited_for_not_a_failure(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    lifecycle = LifecycleClient(leo)
    sd = await lifecycle_sd(db_pool, ready_for="PLAN-TO-EXEC")
    await seed_accepted_handoff(db_pool, sd.id, "LEAD-TO-PLAN")
    slow = await add_agent(db_pool, metadata={"seconds": 4})
    # A standalone PLAN-TO-EXEC (no session) is still running when the lifecycle starts the
    # same handoff as its child, under the same workflow id.
    standalone = await start_handoff(
        leo.client,
        leo.task_queue,
        HandoffType.PLAN_TO_EXEC,
        sd.id,
        options=HandoffOptions(extra_sub_agents=[slow]),
    )
    handle = await lifecycle.start(sd.id, session_id="session-conflict")

    status = await wait_until(lifecycle, sd.id, "exec_complete", timeout=60)
    assert status.state == "waiting" and status.claim == "held by session-conflict"
    assert [(r.step, r.outcome) for r in status.steps] == [
        (Step.LEAD_TO_PLAN, "already_done"),
        (Step.PLAN_TO_EXEC, "accepted"),
    ]
    assert (
        await db_pool.fetchval(
            "SELECT current_phase FROM strategic_directives_v2 WHERE id = $1", sd.id
        )
        == "EXEC"
    )
    description = await standalone.describe()
    assert description.close_time is not None  # the lifecycle ran after it ended
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    history = await check_replay(leo.client, handle.id, "child_conflict")
    assert CHILD_CONFLICT in patches_in(history)


async def test_a_session_that_moved_to_another_sd_has_lost_this_one(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    lifecycle = LifecycleClient(leo)
    sd = await lifecycle_sd(db_pool)
    other = await lifecycle_sd(db_pool)
    handle = await lifecycle.start(sd.id, session_id="session-moves", claim_heartbeat_seconds=0.3)
    await wait_until(lifecycle, sd.id, "exec_complete", timeout=60)

    # The same session claims another SD (a second lifecycle with that session, or by hand).
    moved = await db_pool.fetchval(
        "SELECT claim_sd(p_sd_id => $1, p_session_id => 'session-moves')", other.id
    )
    assert moved["success"] and moved["released_previous"] == sd.id

    status = await status_when(lifecycle, sd.id, "claim lost to nobody (it was released)")
    assert status.waiting_for == "exec_complete"
    refused = await db_pool.fetchval(
        "SELECT heartbeat_sd_claim(p_session_id => 'session-moves', p_sd_id => $1)", sd.id
    )
    assert refused["code"] == "NO_ACTIVE_CLAIM" and sd.id in refused["error"]

    # Claimed back: held again, and the heartbeat keeps it alive.
    ack = await lifecycle.reclaim(sd.id)
    assert ack.accepted
    assert (await lifecycle.status(sd.id)).claim == "held by session-moves"
    await handle.cancel()
