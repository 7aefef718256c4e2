"""SD-LIFECYCLE never goes backwards (issue 17 item 1), on a dev server that suggests continuing as
new after 40 events, so that a real lifecycle continues as new at every wait.

- A run continued as new while it waits for `reclaim` (or anything else) resumes at its step,
  with EXEC's report and LEAD's decision: nothing acknowledged is asked for again.
- An update that completes while the run is closing is carried into the next run.
- A continued run whose claim was taken over waits for `reclaim` instead of failing.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.worker import Replayer

from leo.api import LeoClient, LifecycleClient
from leo.dev_stack import TemporalDevServer, free_port
from leo.domain.handoff_messages import HandoffOptions
from leo.domain.handoffs import Step
from leo.domain.lifecycle_messages import LifecycleStatus, ReclaimInput
from leo.domain.refusals import UpdateRefusal
from leo.infra.client import connect_client
from leo.infra.failures import LEO_DATA_CONVERTER
from leo.infra.settings import Settings
from leo.runtime import build_worker
from tests.support.db import fetch_one
from tests.support.factories import seed_accepted_handoff
from tests.support.workflows import ALL_WORKFLOWS, check_replay, patches_in
from tests.workflows.test_lifecycle_claims import status_when, take_over
from tests.workflows.test_sd_lifecycle import REPORT, lifecycle_sd, wait_until
from workflows.sd_lifecycle_base import CHILD_CONFLICT, RESUME_AT_STEP, RESUME_LOST_CLAIM

LIFECYCLE_PATCHES = {RESUME_AT_STEP, RESUME_LOST_CLAIM, CHILD_CONFLICT}

SUGGEST_AFTER_EVENTS = 40


async def replay_runs(client: Client, workflow_id: str, scenario: str) -> set[str]:
    """Replay every run of a lifecycle (walking back through continue-as-new) and return the
    patch ids they recorded; a run with a patch id no earlier run had is added to the corpus
    when recording (LEO_RECORD_HISTORIES)."""
    histories: list[tuple[str | None, WorkflowHistory]] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        histories.insert(0, (run_id, history))
        run_id = started.continued_execution_run_id
        if not run_id:
            break
    seen: set[str] = set()
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=LEO_DATA_CONVERTER)
    for number, (run, history) in enumerate(histories, start=1):
        new = set(patches_in(history)) - seen
        if new & LIFECYCLE_PATCHES:
            await check_replay(client, workflow_id, f"{scenario}_run{number}", run_id=run)
        else:
            await replayer.replay_workflow(history)
        seen |= new
    return seen


@pytest.fixture(scope="module")
async def can_client() -> AsyncIterator[Client]:
    server = TemporalDevServer(
        Path(tempfile.mkdtemp(prefix="leo-can-chain-")),
        port=free_port(),
        headless=True,
        dynamic_config=(f"limit.historyCount.suggestContinueAsNew={SUGGEST_AFTER_EVENTS}",),
    ).start()
    try:
        yield await connect_client(Settings(temporal_address=server.address))
    finally:
        server.stop()


async def next_run(
    lifecycle: LifecycleClient, sd_id: str, waiting_for: str, timeout: float = 60
) -> LifecycleStatus:
    """Wait until the lifecycle waits for `waiting_for`, then until it has continued as new at
    least once in that wait (and still waits for the same thing)."""
    first = await wait_until(lifecycle, sd_id, waiting_for, timeout)
    async with asyncio.timeout(timeout):
        while True:
            status = await lifecycle.status(sd_id)
            # A new run that has loaded its SD and is back in a wait.
            if status.runs > first.runs and status.waiting_for is not None:
                assert status.waiting_for == waiting_for, status
                assert status.current_step == first.current_step, status
                return status
            await asyncio.sleep(0.1)


async def refuse_reclaims_until_next_run(
    lifecycle: LifecycleClient, sd_id: str, holder: str, timeout: float = 60
) -> LifecycleStatus:
    """While the claim is lost heartbeats pause; every refused `reclaim` adds about ten events,
    so a few of them make the run continue as new in its `reclaim` wait."""
    first = await wait_until(lifecycle, sd_id, "reclaim")
    async with asyncio.timeout(timeout):
        while True:
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await lifecycle.reclaim(sd_id)
            assert holder in str(refused.value.cause)
            status = await lifecycle.status(sd_id)
            while status.runs > first.runs and status.waiting_for is None:
                await asyncio.sleep(0.1)  # the new run is loading its SD
                status = await lifecycle.status(sd_id)
            if status.runs > first.runs:
                # Still at the same step, still waiting for reclaim: not back at a wait before.
                assert status.waiting_for == "reclaim", status
                assert status.current_step == first.current_step, status
                return status


async def test_the_whole_chain_continues_as_new_at_every_wait_and_never_goes_back(
    can_client: Client, db_pool: asyncpg.Pool
) -> None:
    # No commits yet: GITHUB (an extra agent) rejects LEAD-TO-PLAN until they are recorded.
    sd = await lifecycle_sd(db_pool, metadata={"risks": [], "security_findings": []})
    queue = f"leo-can-chain-{uuid.uuid4().hex[:6]}"
    lifecycle = LifecycleClient(LeoClient(can_client, db_pool, queue))
    async with build_worker(can_client, db_pool, task_queue=queue):
        handle = await lifecycle.start(
            sd.id,
            session_id="session-can",
            options=HandoffOptions(extra_sub_agents=["GITHUB"]),
            claim_heartbeat_seconds=0.2,
        )
        # 1. A rejection: continue as new in the `retry` wait, then retry once fixed.
        status = await next_run(lifecycle, sd.id, "retry")
        assert status.current_step == Step.LEAD_TO_PLAN
        await db_pool.execute(
            "UPDATE strategic_directives_v2 SET metadata = metadata || "
            '\'{"commits": ["abc"]}\' WHERE id = $1',
            sd.id,
        )
        await lifecycle.retry(sd.id, reason="commits recorded")

        # 2. EXEC's report, in a continued run; the claim is lost while EXEC works.
        await next_run(lifecycle, sd.id, "exec_complete")
        await take_over(db_pool, sd.id, "session-can", "session-human")
        await status_when(lifecycle, sd.id, "claim lost to session-human")
        await lifecycle.report_exec_complete(sd.id, REPORT)

        # 3. Continued as new while waiting for `reclaim` before EXEC-TO-PLAN: it stays there.
        status = await refuse_reclaims_until_next_run(lifecycle, sd.id, "session-human")
        assert status.current_step == Step.EXEC_TO_PLAN
        await db_pool.fetchval("SELECT release_sd(p_session_id => 'session-human')")
        await lifecycle.reclaim(sd.id, reason="the human is done")

        # 4. LEAD's approval, then the claim is lost before LEAD-FINAL-APPROVAL.
        await next_run(lifecycle, sd.id, "approval")
        await take_over(db_pool, sd.id, "session-can", "session-lead")
        await status_when(lifecycle, sd.id, "claim lost to session-lead")
        await lifecycle.approve(sd.id, approver="lead@example.com", reason="ship it")
        status = await refuse_reclaims_until_next_run(lifecycle, sd.id, "session-lead")
        assert status.current_step == Step.LEAD_FINAL_APPROVAL
        await db_pool.fetchval("SELECT release_sd(p_session_id => 'session-lead')")
        await lifecycle.reclaim(sd.id)

        final = await lifecycle.wait(handle)

    assert final.state == "completed", final
    assert [(r.step, r.outcome) for r in final.steps] == [
        (Step.LEAD_TO_PLAN, "rejected"),
        (Step.LEAD_TO_PLAN, "accepted"),
        (Step.PLAN_TO_EXEC, "accepted"),
        (Step.EXEC_WORK, "reported"),
        (Step.EXEC_TO_PLAN, "accepted"),
        (Step.PLAN_TO_LEAD, "accepted"),
        (Step.LEAD_APPROVAL, "approved"),
        (Step.LEAD_FINAL_APPROVAL, "accepted"),
    ]
    assert final.runs >= 6
    assert RESUME_AT_STEP in await replay_runs(can_client, handle.id, "never_back")
    # The report was recorded once: one report row, its commit appended once, one retrospective.
    assert (
        await db_pool.fetchval("SELECT count(*) FROM sd_exec_reports WHERE sd_id = $1", sd.id) == 1
    )
    assert (
        await db_pool.fetchval("SELECT count(*) FROM retrospectives WHERE sd_id = $1", sd.id) == 1
    )
    commits = await db_pool.fetchval(
        "SELECT metadata -> 'commits' FROM strategic_directives_v2 WHERE id = $1", sd.id
    )
    assert commits == ["abc", "def456"]
    row = await fetch_one(
        db_pool, "SELECT status, current_phase FROM strategic_directives_v2 WHERE id = $1", sd.id
    )
    assert tuple(row) == ("completed", "COMPLETED")


async def test_a_report_completing_while_the_run_continues_as_new_is_carried_over(
    can_client: Client, db_pool: asyncpg.Pool
) -> None:
    sd = await lifecycle_sd(db_pool, ready_for="EXEC-TO-PLAN", stories=[{"status": "in_progress"}])
    await seed_accepted_handoff(db_pool, sd.id, "PLAN-TO-EXEC")
    queue = f"leo-can-carry-{uuid.uuid4().hex[:6]}"
    lifecycle = LifecycleClient(LeoClient(can_client, db_pool, queue))
    # Recording this SD's report takes 3 s: the run reaches the suggestion meanwhile.
    trigger = f"slow_report_{uuid.uuid4().hex[:8]}"
    await db_pool.execute(
        f"CREATE FUNCTION {trigger}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.sd_id = '{sd.id}' THEN PERFORM pg_sleep(3); END IF; RETURN NEW; END $$; "
        f"CREATE TRIGGER {trigger} BEFORE INSERT ON sd_exec_reports "
        f"FOR EACH ROW EXECUTE FUNCTION {trigger}()"
    )
    try:
        async with build_worker(can_client, db_pool, task_queue=queue):
            handle = await lifecycle.start(
                sd.id, session_id="session-carry", claim_heartbeat_seconds=0.2
            )
            before = await next_run(lifecycle, sd.id, "exec_complete")
            report = asyncio.create_task(lifecycle.report_exec_complete(sd.id, REPORT))
            # While the run closes (it waits for the report's handler), a new message is refused
            # with a retryable answer, not taken and dropped.
            refusals: set[str | None] = set()
            raw = await lifecycle.handle(sd.id)
            while not report.done():
                with pytest.raises(WorkflowUpdateFailedError) as refused:
                    await raw.execute_update("reclaim", ReclaimInput())
                refusals.add(getattr(refused.value.cause, "type", None))
                await asyncio.sleep(0.05)
            assert UpdateRefusal.CONTINUING_AS_NEW in refusals, refusals
            ack = await report
            assert ack.accepted and "recorded" in ack.detail
            # Acknowledged, so never asked for again: the chain goes on to LEAD's approval.
            status = await wait_until(lifecycle, sd.id, "approval", timeout=60)
            assert status.runs > before.runs
            await lifecycle.approve(sd.id, approver="lead")
            final = await lifecycle.wait(handle)
    finally:
        await db_pool.execute(
            f"DROP TRIGGER {trigger} ON sd_exec_reports; DROP FUNCTION {trigger}()"
        )
    assert final.state == "completed"
    assert [r.step for r in final.steps].count(Step.EXEC_WORK) == 1
    assert (
        await db_pool.fetchval("SELECT count(*) FROM sd_exec_reports WHERE sd_id = $1", sd.id) == 1
    )


async def test_a_continued_run_whose_claim_was_taken_over_waits_for_reclaim(
    can_client: Client, db_pool: asyncpg.Pool
) -> None:
    sd = await lifecycle_sd(db_pool, ready_for="EXEC-TO-PLAN", stories=[{"status": "in_progress"}])
    await seed_accepted_handoff(db_pool, sd.id, "PLAN-TO-EXEC")
    queue = f"leo-can-stolen-{uuid.uuid4().hex[:6]}"
    lifecycle = LifecycleClient(LeoClient(can_client, db_pool, queue))
    async with build_worker(can_client, db_pool, task_queue=queue):
        handle = await lifecycle.start(
            sd.id, session_id="session-slow", claim_heartbeat_seconds=0.2
        )
        first = await wait_until(lifecycle, sd.id, "exec_complete")
        async with db_pool.acquire() as conn, conn.transaction():
            # Hold the SD's row: the next run's claim_sd waits for it, heartbeats do not.
            await conn.execute(
                "SELECT 1 FROM strategic_directives_v2 WHERE id = $1 FOR UPDATE", sd.id
            )
            async with asyncio.timeout(60):
                while (await lifecycle.status(sd.id)).runs == first.runs:
                    await asyncio.sleep(0.05)
            # Between the last heartbeat and the next run's claim, another session takes over.
            await take_over(conn, sd.id, "session-slow", "session-thief")
        status = await status_when(lifecycle, sd.id, "claim lost to session-thief")
        assert status.state == "waiting" and status.waiting_for == "exec_complete"

        await lifecycle.report_exec_complete(sd.id, REPORT)
        await wait_until(lifecycle, sd.id, "reclaim")
        await db_pool.fetchval("SELECT release_sd(p_session_id => 'session-thief')")
        await lifecycle.reclaim(sd.id)
        await wait_until(lifecycle, sd.id, "approval")
        await lifecycle.approve(sd.id, approver="lead")
        final = await lifecycle.wait(handle)
    assert final.state == "completed"
    assert RESUME_LOST_CLAIM in await replay_runs(can_client, handle.id, "claim_taken_in_can")
