"""SD-LIFECYCLE: the chained handoffs with EXEC's report, LEAD's approval, retries and claims."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import CancelledError

from leo.api import LeoClient, LifecycleClient, LifecycleConflict
from leo.domain.handoff_messages import HandoffOptions
from leo.domain.handoffs import Step, lifecycle_workflow_id
from leo.domain.lifecycle_messages import ExecReport, LifecycleStatus
from tests.support.db import fetch_one
from tests.support.factories import SdFixture, create_sd, seed_accepted_handoff
from tests.support.workflows import check_replay

EVIDENCE = {
    "risks": [{"risk": "r", "mitigation": "m"}],
    "commits": ["abc"],
    "security_findings": [],
}
REPORT = ExecReport(
    summary="implemented and tested",
    commits=["def456"],
    retrospective={"quality_score": 88, "what_went_well": ["parallel agents"]},
)


async def lifecycle_sd(pool: asyncpg.Pool, **kw: Any) -> SdFixture:
    fields: dict[str, Any] = {
        "sd_type": "infrastructure",
        "metadata": EVIDENCE,
        "with_prd": True,
        "stories": [{"status": "ready"}, {"status": "in_progress"}],
    }
    fields.update(kw)
    return await create_sd(pool, **fields)


async def wait_until(
    lifecycle: LifecycleClient, sd_id: str, waiting_for: str, timeout: float = 30
) -> LifecycleStatus:
    async with asyncio.timeout(timeout):
        while True:
            try:
                status = await lifecycle.status(sd_id)
            except Exception:  # not started yet
                status = None
            if status is not None and status.waiting_for == waiting_for:
                return status
            await asyncio.sleep(0.1)


@pytest.fixture
def lifecycle(leo: LeoClient) -> LifecycleClient:
    return LifecycleClient(leo)


def decisions(status: LifecycleStatus) -> list[dict[str, Any]]:
    """A run's step records without ids and times: what two twin runs must agree on."""
    drop = {"workflow_id", "run_id", "audit_id", "handoff_id", "at", "detail"}
    return [r.model_dump(exclude=drop) for r in status.steps]


async def drive(lifecycle: LifecycleClient, sd: SdFixture, session: str) -> LifecycleStatus:
    handle = await lifecycle.start(sd.id, session_id=session)
    await wait_until(lifecycle, sd.id, "exec_complete")
    await lifecycle.report_exec_complete(sd.id, REPORT)
    await wait_until(lifecycle, sd.id, "approval")
    await lifecycle.approve(sd.id, approver="lead@example.com", reason="ship it")
    return await lifecycle.wait(handle)


async def test_lifecycle_runs_all_handoffs_with_exec_report_and_approval(
    lifecycle: LifecycleClient, db_pool: asyncpg.Pool, client: Client
) -> None:
    sd = await lifecycle_sd(db_pool)

    final = await drive(lifecycle, sd, "session-one")

    assert final.state == "completed"
    assert [(r.step, r.outcome) for r in final.steps] == [
        (Step.LEAD_TO_PLAN, "accepted"),
        (Step.PLAN_TO_EXEC, "accepted"),
        (Step.EXEC_WORK, "reported"),
        (Step.EXEC_TO_PLAN, "accepted"),
        (Step.PLAN_TO_LEAD, "accepted"),
        (Step.LEAD_APPROVAL, "approved"),
        (Step.LEAD_FINAL_APPROVAL, "accepted"),
    ]
    row = await fetch_one(
        db_pool,
        "SELECT status, current_phase, claiming_session_id, is_working_on FROM strategic_directives_v2 WHERE id = $1",
        sd.id,
    )
    assert tuple(row) == ("completed", "COMPLETED", None, False)
    report = await fetch_one(
        db_pool, "SELECT summary, evidence FROM sd_exec_reports WHERE sd_id = $1", sd.id
    )
    assert report["summary"] == "implemented and tested" and report["evidence"]["commits"] == [
        "def456"
    ]
    claim = await fetch_one(
        db_pool,
        "SELECT status, release_reason FROM claude_sessions WHERE session_id = 'session-one'",
    )
    assert tuple(claim) == ("released", "completed")

    # Started again on the completed SD: nothing changes and the same summary comes back.
    again = await lifecycle.wait(await lifecycle.start(sd.id, session_id="session-one"))
    assert again == final
    assert (
        await db_pool.fetchval(
            "SELECT transition_version FROM strategic_directives_v2 WHERE id = $1", sd.id
        )
        == 7  # five transitions and EXEC's report
    )
    # Its history (updates, children, timers) replays against this code.
    await check_replay(client, lifecycle_workflow_id(sd.id), "restarted_when_completed")


async def test_lifecycle_resumes_from_exec_and_refuses_messages_out_of_turn(
    lifecycle: LifecycleClient, db_pool: asyncpg.Pool
) -> None:
    sd = await lifecycle_sd(db_pool, ready_for="EXEC-TO-PLAN", stories=[{"status": "in_progress"}])
    await seed_accepted_handoff(db_pool, sd.id, "PLAN-TO-EXEC", score=95)
    handle = await lifecycle.start(sd.id)

    status = await wait_until(lifecycle, sd.id, "exec_complete")
    assert [(r.step, r.outcome) for r in status.steps] == [
        (Step.LEAD_TO_PLAN, "already_done"),
        (Step.PLAN_TO_EXEC, "already_done"),
    ]
    assert status.steps[1].normalized_score == 95

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await lifecycle.approve(sd.id, approver="lead")
    assert "not waiting for an approval" in str(refused.value.cause)

    bad = ExecReport(summary="done", test_results={f"{sd.sd_key}:US-999": "passing"})
    with pytest.raises(WorkflowUpdateFailedError) as unknown_story:
        await lifecycle.report_exec_complete(sd.id, bad)
    assert "stories not found" in str(unknown_story.value.cause)
    assert (
        await db_pool.fetchval("SELECT count(*) FROM sd_exec_reports WHERE sd_id = $1", sd.id) == 0
    )

    await lifecycle.report_exec_complete(sd.id, REPORT)
    await wait_until(lifecycle, sd.id, "approval")
    with pytest.raises(WorkflowUpdateFailedError) as no_reason:
        await lifecycle.reject(sd.id, approver="lead", reason=" ")
    assert "needs a reason" in str(no_reason.value.cause)
    await lifecycle.reject(sd.id, approver="lead", reason="scope creep")

    final = await lifecycle.wait(handle)
    assert final.state == "rejected_by_lead" and final.last_rejection == "scope creep"
    assert (
        await db_pool.fetchval(
            "SELECT current_phase FROM strategic_directives_v2 WHERE id = $1", sd.id
        )
        == "LEAD_FINAL"
    )


async def test_rejected_handoff_waits_for_retry_and_continues_once_fixed(
    lifecycle: LifecycleClient, db_pool: asyncpg.Pool
) -> None:
    # No commits recorded: GITHUB (asked for: the policy does not make it mandatory for an
    # infrastructure SD) fails, so EXEC-TO-PLAN is rejected until they are.
    sd = await lifecycle_sd(
        db_pool,
        ready_for="EXEC-TO-PLAN",
        stories=[{"status": "in_progress"}],
        metadata={"risks": [], "security_findings": []},
    )
    await seed_accepted_handoff(db_pool, sd.id, "PLAN-TO-EXEC")
    handle = await lifecycle.start(sd.id, options=HandoffOptions(extra_sub_agents=["GITHUB"]))
    await wait_until(lifecycle, sd.id, "exec_complete")
    await lifecycle.report_exec_complete(
        sd.id, ExecReport(summary="done, commits forgotten", retrospective={"quality_score": 80})
    )

    status = await wait_until(lifecycle, sd.id, "retry")
    assert status.current_step == Step.EXEC_TO_PLAN
    assert (
        status.steps[-1].outcome == "rejected" and status.steps[-1].sub_agents["GITHUB"] == "FAIL"
    )
    assert "EXEC-TO-PLAN" in (status.last_rejection or "")

    await db_pool.execute(
        'UPDATE strategic_directives_v2 SET metadata = metadata || \'{"commits": ["abc"]}\' WHERE id = $1',
        sd.id,
    )
    await lifecycle.retry(sd.id, reason="commits recorded")
    await wait_until(lifecycle, sd.id, "approval")
    await lifecycle.approve(sd.id, approver="lead")
    final = await lifecycle.wait(handle)

    assert final.state == "completed"
    exec_to_plan = [r for r in final.steps if r.step == Step.EXEC_TO_PLAN]
    assert [(r.outcome, r.attempt) for r in exec_to_plan] == [("rejected", 1), ("accepted", 2)]
    assert final.retries_used == {"EXEC-TO-PLAN": 1}


async def test_deadline_passes_while_waiting_and_releases_the_claim(
    lifecycle: LifecycleClient, db_pool: asyncpg.Pool
) -> None:
    sd = await lifecycle_sd(db_pool)
    handle = await lifecycle.start(sd.id, session_id="session-deadline", deadline_seconds=4)

    final = await lifecycle.wait(handle)

    assert final.state == "expired" and final.current_step == Step.EXEC_WORK
    claim = await fetch_one(
        db_pool,
        "SELECT status, release_reason FROM claude_sessions WHERE session_id = 'session-deadline'",
    )
    assert tuple(claim) == ("released", "timeout")


async def test_second_session_is_refused_and_cancel_releases_the_claim(
    lifecycle: LifecycleClient, db_pool: asyncpg.Pool
) -> None:
    sd = await lifecycle_sd(db_pool)
    handle = await lifecycle.start(sd.id, session_id="session-a")
    await wait_until(lifecycle, sd.id, "exec_complete")

    with pytest.raises(LifecycleConflict) as conflict:
        await lifecycle.start(sd.id, session_id="session-b")
    assert "session session-a" in str(conflict.value)
    holder = await db_pool.fetchval(
        "SELECT claiming_session_id FROM strategic_directives_v2 WHERE id = $1", sd.id
    )
    assert holder == "session-a"

    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as cancelled:
        await handle.result()
    assert isinstance(cancelled.value.cause, CancelledError)
    async with asyncio.timeout(10):
        while (
            await db_pool.fetchval(
                "SELECT status FROM claude_sessions WHERE session_id = 'session-a'"
            )
            != "released"
        ):
            await asyncio.sleep(0.1)
    assert (
        await db_pool.fetchval(
            "SELECT release_reason FROM claude_sessions WHERE session_id = 'session-a'"
        )
        == "manual"
    )


async def test_stale_claim_of_another_session_is_taken_over(
    lifecycle: LifecycleClient, db_pool: asyncpg.Pool
) -> None:
    sd = await lifecycle_sd(db_pool)
    await db_pool.fetchval("SELECT claim_sd(p_sd_id => $1, p_session_id => 'session-gone')", sd.id)
    await db_pool.execute(
        "UPDATE claude_sessions SET heartbeat_at = now() - interval '301 seconds' WHERE session_id = 'session-gone'"
    )

    handle = await lifecycle.start(sd.id, session_id="session-new")
    await wait_until(lifecycle, sd.id, "exec_complete")

    old = await fetch_one(
        db_pool,
        "SELECT status, release_reason FROM claude_sessions WHERE session_id = 'session-gone'",
    )
    assert tuple(old) == ("released", "takeover")
    assert (
        await db_pool.fetchval(
            "SELECT claiming_session_id FROM strategic_directives_v2 WHERE id = $1", sd.id
        )
        == "session-new"
    )
    await handle.cancel()


async def test_live_claim_of_another_session_refuses_the_lifecycle(
    lifecycle: LifecycleClient, db_pool: asyncpg.Pool
) -> None:
    sd = await lifecycle_sd(db_pool)
    await db_pool.fetchval("SELECT claim_sd(p_sd_id => $1, p_session_id => 'session-human')", sd.id)

    from leo.api import HandoffFailed

    with pytest.raises(HandoffFailed) as refused:
        await lifecycle.wait(await lifecycle.start(sd.id, session_id="session-bot"))
    assert refused.value.code == "CLAIMED_BY_OTHER_SESSION"
    assert "session-human" in str(refused.value)
    assert (
        await db_pool.fetchval(
            "SELECT current_phase FROM strategic_directives_v2 WHERE id = $1", sd.id
        )
        == "LEAD_APPROVAL"
    )


async def test_twin_sds_give_identical_results_field_by_field(
    lifecycle: LifecycleClient, db_pool: asyncpg.Pool
) -> None:
    first_sd = await lifecycle_sd(db_pool)
    twin_sd = await lifecycle_sd(db_pool)

    first = await drive(lifecycle, first_sd, "session-twin-1")
    twin = await drive(lifecycle, twin_sd, "session-twin-2")

    assert first.state == twin.state == "completed"
    assert decisions(first) == decisions(twin)
    rows = await db_pool.fetch(
        "SELECT status, current_phase, transition_version, progress_percentage FROM strategic_directives_v2 "
        "WHERE id = ANY($1) ORDER BY id",
        [first_sd.id, twin_sd.id],
    )
    assert tuple(rows[0]) == tuple(rows[1])
