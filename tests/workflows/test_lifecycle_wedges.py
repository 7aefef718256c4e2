"""No input wedges a lifecycle (issue 20 item 3): each case is a clear refusal, and the next
lifecycle on the same worker goes on normally.

- a `deadline_seconds` large enough to overflow the workflow's clock;
- a client that sets `resume`, which only the lifecycle itself sets when it continues as new;
- a handoff rejected again and again: `steps` stays bounded (review L7).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from temporalio.client import WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError

from leo.api import LeoClient, LifecycleClient
from leo.domain.budget import PAYLOAD_BUDGET_BYTES, json_size
from leo.domain.handoff_messages import HandoffOptions
from leo.domain.handoffs import Step, lifecycle_workflow_id
from leo.domain.lifecycle_messages import (
    MAX_REJECTIONS_KEPT,
    ExecReport,
    LifecycleInput,
    LifecycleResume,
    LifecycleStatus,
    StepRecord,
    bounded_steps,
)
from leo.domain.refusals import RefusalCode
from tests.support.factories import create_sd, seed_accepted_handoff
from tests.workflows.test_sd_lifecycle import lifecycle_sd, wait_until


async def refused_start(leo: LeoClient, sd_id: str, request: Any) -> ApplicationError:
    """Start the SD's lifecycle with `request` as it is (no client-side checks) and return the
    failure it ends with, which must come at once."""
    handle = await leo.client.start_workflow(
        "SD-LIFECYCLE",
        request,
        id=lifecycle_workflow_id(sd_id),
        task_queue=leo.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    )
    async with asyncio.timeout(20):
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


@pytest.mark.parametrize("seconds", [1e12, 1e300])
async def test_a_deadline_that_would_overflow_is_refused_and_the_next_start_runs(
    leo: LeoClient, db_pool: asyncpg.Pool, seconds: float
) -> None:
    sd = await lifecycle_sd(db_pool)
    cause = await refused_start(leo, sd.id, {"sd_id": sd.id, "deadline_seconds": seconds})
    assert cause.type == RefusalCode.INVALID_INPUT
    assert "deadline_seconds" in cause.message

    lifecycle = LifecycleClient(leo)
    handle = await lifecycle.start(sd.id, deadline_seconds=3600)
    status = await wait_until(lifecycle, sd.id, "exec_complete", timeout=60)
    assert [(r.step, r.outcome) for r in status.steps] == [
        (Step.LEAD_TO_PLAN, "accepted"),
        (Step.PLAN_TO_EXEC, "accepted"),
    ]
    await handle.cancel()


async def test_a_client_that_sets_resume_is_refused_and_the_next_start_waits_for_approval(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    sd = await create_sd(
        db_pool,
        ready_for="LEAD-FINAL-APPROVAL",
        stories=[{"status": "completed"}],
        sd_type="infrastructure",
    )
    await seed_accepted_handoff(db_pool, sd.id, "PLAN-TO-LEAD")
    # It would skip LEAD's approval: only a `retry` would be needed to finish the SD.
    forged = LifecycleInput(
        sd_id=sd.id,
        resume=LifecycleResume(current_step=Step.LEAD_FINAL_APPROVAL, waiting_for="retry"),
    )
    cause = await refused_start(leo, sd.id, forged)
    assert cause.type == RefusalCode.INVALID_INPUT
    assert "resume is set only by the lifecycle itself" in cause.message

    lifecycle = LifecycleClient(leo)
    handle = await lifecycle.start(sd.id)
    status = await wait_until(lifecycle, sd.id, "approval")
    assert status.current_step == Step.LEAD_APPROVAL
    await handle.cancel()
    assert (
        await db_pool.fetchval(
            "SELECT current_phase FROM strategic_directives_v2 WHERE id = $1", sd.id
        )
        == "LEAD_FINAL"
    )


async def test_a_handoff_rejected_again_and_again_keeps_the_status_bounded(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    # No commits: GITHUB fails EXEC-TO-PLAN until they are recorded.
    sd = await lifecycle_sd(
        db_pool,
        ready_for="EXEC-TO-PLAN",
        stories=[{"status": "in_progress"}],
        metadata={"risks": [], "security_findings": []},
    )
    await seed_accepted_handoff(db_pool, sd.id, "PLAN-TO-EXEC")
    lifecycle = LifecycleClient(leo)
    handle = await lifecycle.start(
        sd.id, options=HandoffOptions(extra_sub_agents=["GITHUB"]), max_retries=20
    )
    await wait_until(lifecycle, sd.id, "exec_complete")
    await lifecycle.report_exec_complete(
        sd.id, ExecReport(summary="done, commits forgotten", retrospective={"quality_score": 80})
    )
    rejections = MAX_REJECTIONS_KEPT + 4
    for _ in range(rejections - 1):
        await wait_until(lifecycle, sd.id, "retry", timeout=60)
        await lifecycle.retry(sd.id)
    status = await wait_until(lifecycle, sd.id, "retry", timeout=60)

    kept = [r for r in status.steps if r.step == Step.EXEC_TO_PLAN]
    assert [r.attempt for r in kept] == list(
        range(rejections - MAX_REJECTIONS_KEPT + 1, rejections + 1)
    )
    assert status.steps_omitted == rejections - MAX_REJECTIONS_KEPT
    assert status.retries_used == {"EXEC-TO-PLAN": rejections - 1}

    await db_pool.execute(
        "UPDATE strategic_directives_v2 SET metadata = metadata || "
        '\'{"commits": ["abc"]}\' WHERE id = $1',
        sd.id,
    )
    await lifecycle.retry(sd.id, reason="commits recorded")
    await wait_until(lifecycle, sd.id, "approval", timeout=60)
    await lifecycle.approve(sd.id, approver="lead")
    final = await lifecycle.wait(handle)
    assert final.state == "completed"
    accepted = [r for r in final.steps if r.step == Step.EXEC_TO_PLAN][-1]
    assert (accepted.outcome, accepted.attempt) == ("accepted", rejections + 1)


def test_bounded_steps_keep_the_status_inside_the_payload_budget() -> None:
    """Every handoff step rejected 100 times with 32 KiB of issues each: the status stays far
    inside one payload (it is the query result, the continue-as-new input and the result)."""
    at = datetime(2026, 12, 7, tzinfo=UTC)
    status = LifecycleStatus(sd_id="SD-X")
    for step in (Step.LEAD_TO_PLAN, Step.PLAN_TO_EXEC, Step.EXEC_TO_PLAN, Step.PLAN_TO_LEAD):
        for attempt in range(1, 101):
            record = StepRecord(
                step=step,
                outcome="rejected",
                attempt=attempt,
                issues=tuple("x" * 1024 for _ in range(32)),
                at=at,
            )
            steps, dropped = bounded_steps([*status.steps, record])
            status = status.model_copy(
                update={"steps": steps, "steps_omitted": status.steps_omitted + dropped}
            )
    assert len(status.steps) == 4 * MAX_REJECTIONS_KEPT
    assert status.steps_omitted == 4 * (100 - MAX_REJECTIONS_KEPT)
    assert json_size(status) < PAYLOAD_BUDGET_BYTES // 2
    newest = status.steps[-1]
    assert newest.attempt == 100 and newest.issues[-1].endswith("more issue(s) not kept")
