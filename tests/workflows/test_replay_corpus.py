"""The scenarios the replay corpus (histories/, see its README.md) records: every branch of
today's workflow code that a running workflow can be in when a new release is deployed.
(Which patches each history went through is checked for the whole corpus, by
test_lifecycle_and_replay.py: here only what each scenario did.)

Each test drives a real workflow into one shape, checks that its history really went that way
(so a recorded file is what its name says), and replays it. `bin/record-histories <shape>` runs
this module with LEO_RECORD_HISTORIES=<shape>, which adds each history to the corpus as a new
file. The five accepted handoffs are recorded by test_lifecycle_and_replay.py.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from pathlib import Path

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from leo.api import HandoffFailed, LeoClient, LifecycleClient
from leo.dev_stack import TemporalDevServer, free_port
from leo.domain.handoff_messages import HandoffOptions
from leo.domain.handoffs import HandoffType, Step, lifecycle_workflow_id, workflow_id_for
from leo.domain.lifecycle_messages import ExecReport
from leo.domain.refusals import FailureType
from leo.infra.client import connect_client
from leo.infra.settings import Settings
from leo.runtime import build_worker
from tests.support.factories import create_sd, seed_accepted_handoff
from tests.support.workflows import (
    accepted_updates,
    check_replay,
    continued_from_another_run,
    ending,
    patches_in,
    start_handoff,
)
from tests.workflows.test_agent_reuse import rejected_then_retried
from tests.workflows.test_lifecycle_claims import status_when, take_over
from tests.workflows.test_sd_lifecycle import REPORT, drive, lifecycle_sd, wait_until
from tests.workflows.test_thresholds_and_starts import plan_to_lead_ready
from workflows.sd_lifecycle_base import CLAIM_WATCH


async def test_a_rejected_handoff(leo: LeoClient, client: Client, db_pool: asyncpg.Pool) -> None:
    sd_id = await plan_to_lead_ready(db_pool, sd_type="security", retro_quality=10)
    result = await leo.run_handoff(HandoffType.PLAN_TO_LEAD, sd_id)
    assert not result.accepted

    history = await check_replay(
        client, workflow_id_for(HandoffType.PLAN_TO_LEAD, sd_id), "rejected"
    )
    assert ending(history) == f"failed:{FailureType.HANDOFF_REJECTED.value}"


async def test_a_handoff_started_again_after_it_was_accepted(
    leo: LeoClient, client: Client, db_pool: asyncpg.Pool
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    first = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id)
    # A plain start (default id reuse policy) makes a new run, which finds the accepted record.
    handle = await start_handoff(client, leo.task_queue, HandoffType.LEAD_TO_PLAN, sd.id)
    again = await leo.wait(handle)
    assert handle.result_run_id != first.run_id
    assert again.accepted and again.run_id == first.run_id and again.idempotent_hit

    history = await check_replay(
        client, workflow_id_for(HandoffType.LEAD_TO_PLAN, sd.id), "accepted_again"
    )
    # The branch that returns the accepted record: no agent, no gates.
    assert ending(history) == "completed"
    scheduled = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled == []


async def test_a_handoff_refused_in_the_wrong_phase(
    leo: LeoClient, client: Client, db_pool: asyncpg.Pool
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    with pytest.raises(HandoffFailed) as refused:
        await leo.run_handoff(HandoffType.EXEC_TO_PLAN, sd.id)
    assert refused.value.code == "INVALID_PHASE"

    history = await check_replay(
        client, workflow_id_for(HandoffType.EXEC_TO_PLAN, sd.id), "refused"
    )
    assert ending(history) == "failed:INVALID_PHASE"


async def test_a_handoff_that_reuses_a_recorded_agent_result(
    leo: LeoClient, client: Client, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    sd_id, slow, _, first, second = await rejected_then_retried(leo, db_pool, tmp_path, window=3600)
    assert second.accepted and [r.code for r in second.sub_agents if r.reused] == [slow]

    history = await check_replay(
        client, workflow_id_for(HandoffType.LEAD_TO_PLAN, sd_id), "agent_reused"
    )
    assert ending(history) == "completed"
    agents_run = [
        json.loads(e.activity_task_scheduled_event_attributes.input.payloads[0].data)["spec"][
            "code"
        ]
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "run_sub_agent"
    ]
    assert agents_run and slow not in agents_run
    await check_replay(
        client,
        workflow_id_for(HandoffType.LEAD_TO_PLAN, sd_id),
        "agent_failed",
        run_id=first.run_id,
    )


async def test_a_lifecycle_from_start_to_completion(
    leo: LeoClient, client: Client, db_pool: asyncpg.Pool
) -> None:
    lifecycle = LifecycleClient(leo)
    sd = await lifecycle_sd(db_pool)
    final = await drive(lifecycle, sd, "session-corpus-completed")
    assert final.state == "completed"

    history = await check_replay(client, lifecycle_workflow_id(sd.id), "completed")
    assert ending(history) == "completed"
    assert accepted_updates(history) == ["report_exec_complete", "approve"]


async def test_a_lifecycle_rejected_by_lead(
    leo: LeoClient, client: Client, db_pool: asyncpg.Pool
) -> None:
    lifecycle = LifecycleClient(leo)
    sd = await lifecycle_sd(db_pool, ready_for="EXEC-TO-PLAN", stories=[{"status": "in_progress"}])
    await seed_accepted_handoff(db_pool, sd.id, "PLAN-TO-EXEC")
    handle = await lifecycle.start(sd.id, session_id="session-corpus-lead-rejects")
    await wait_until(lifecycle, sd.id, "exec_complete")
    await lifecycle.report_exec_complete(sd.id, REPORT)
    await wait_until(lifecycle, sd.id, "approval")
    await lifecycle.reject(sd.id, approver="lead", reason="scope creep")
    assert (await lifecycle.wait(handle)).state == "rejected_by_lead"

    history = await check_replay(client, lifecycle_workflow_id(sd.id), "rejected_by_lead")
    assert ending(history) == f"failed:{FailureType.LEAD_REJECTED.value}"


async def test_a_lifecycle_that_retries_a_rejected_handoff(
    leo: LeoClient, client: Client, db_pool: asyncpg.Pool
) -> None:
    lifecycle = LifecycleClient(leo)
    # No commits: GITHUB FAILs and EXEC-TO-PLAN is rejected until they are recorded.
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
    await wait_until(lifecycle, sd.id, "retry")
    await db_pool.execute(
        'UPDATE strategic_directives_v2 SET metadata = metadata || \'{"commits": ["abc"]}\' WHERE id = $1',
        sd.id,
    )
    await lifecycle.retry(sd.id, reason="commits recorded")
    await wait_until(lifecycle, sd.id, "approval")
    await lifecycle.approve(sd.id, approver="lead")
    final = await lifecycle.wait(handle)
    assert final.state == "completed" and final.retries_used == {"EXEC-TO-PLAN": 1}

    history = await check_replay(client, lifecycle_workflow_id(sd.id), "retry")
    assert accepted_updates(history) == ["report_exec_complete", "retry", "approve"]


async def test_a_lifecycle_that_loses_its_claim_and_reclaims_it(
    leo: LeoClient, client: Client, db_pool: asyncpg.Pool
) -> None:
    lifecycle = LifecycleClient(leo)
    sd = await lifecycle_sd(db_pool, ready_for="EXEC-TO-PLAN", stories=[{"status": "in_progress"}])
    await seed_accepted_handoff(db_pool, sd.id, "PLAN-TO-EXEC")
    session = f"session-corpus-{uuid.uuid4().hex[:6]}"
    handle = await lifecycle.start(sd.id, session_id=session, claim_heartbeat_seconds=0.5)
    await wait_until(lifecycle, sd.id, "exec_complete")
    await take_over(db_pool, sd.id, session, "session-corpus-human")
    await status_when(lifecycle, sd.id, "claim lost to session-corpus-human")
    await lifecycle.report_exec_complete(sd.id, REPORT)
    await wait_until(lifecycle, sd.id, "reclaim")
    await db_pool.fetchval("SELECT release_sd(p_session_id => 'session-corpus-human')")
    await lifecycle.reclaim(sd.id, reason="the human is done")
    await wait_until(lifecycle, sd.id, "approval")
    await lifecycle.approve(sd.id, approver="lead")
    assert (await lifecycle.wait(handle)).state == "completed"

    history = await check_replay(client, lifecycle_workflow_id(sd.id), "reclaim")
    assert accepted_updates(history) == ["report_exec_complete", "reclaim", "approve"]
    assert CLAIM_WATCH in patches_in(history)


async def test_a_lifecycle_that_continues_as_new_at_its_waits(db_pool: asyncpg.Pool) -> None:
    """A server that suggests continue-as-new after 40 events: the lifecycle continues as new
    while it waits for EXEC's report, for `retry` and for the approval. Every run is recorded."""
    server = TemporalDevServer(
        Path(tempfile.mkdtemp(prefix="leo-corpus-can-")),
        port=free_port(),
        headless=True,
        dynamic_config=("limit.historyCount.suggestContinueAsNew=40",),
    ).start()
    try:
        client = await connect_client(Settings(temporal_address=server.address))
        queue = f"leo-corpus-can-{uuid.uuid4().hex[:6]}"
        sd = await lifecycle_sd(
            db_pool,
            ready_for="EXEC-TO-PLAN",
            stories=[{"status": "in_progress"}],
            metadata={"risks": [], "security_findings": []},
        )
        await seed_accepted_handoff(db_pool, sd.id, "PLAN-TO-EXEC")
        lifecycle = LifecycleClient(LeoClient(client, db_pool, queue))

        async def after_a_new_run(waiting_for: str) -> None:
            runs = (await lifecycle.status(sd.id)).runs
            async with asyncio.timeout(60):
                while (status := await lifecycle.status(sd.id)).runs <= runs or (
                    status.waiting_for != waiting_for
                ):
                    await asyncio.sleep(0.2)

        async with build_worker(client, db_pool, task_queue=queue):
            handle = await lifecycle.start(
                sd.id,
                session_id="session-corpus-can",
                claim_heartbeat_seconds=0.5,
                options=HandoffOptions(extra_sub_agents=["GITHUB"]),
            )
            await wait_until(lifecycle, sd.id, "exec_complete")
            await after_a_new_run("exec_complete")
            await lifecycle.report_exec_complete(
                sd.id, ExecReport(summary="done", retrospective={"quality_score": 80})
            )
            await wait_until(lifecycle, sd.id, "retry")
            await after_a_new_run("retry")
            await db_pool.execute(
                'UPDATE strategic_directives_v2 SET metadata = metadata || \'{"commits": ["abc"]}\' WHERE id = $1',
                sd.id,
            )
            await lifecycle.retry(sd.id, reason="commits recorded")
            await wait_until(lifecycle, sd.id, "approval")
            await after_a_new_run("approval")
            await lifecycle.approve(sd.id, approver="lead")
            final = await lifecycle.wait(handle)

            assert final.state == "completed" and final.runs >= 4
            assert [(r.step, r.outcome) for r in final.steps][-4:] == [
                (Step.EXEC_TO_PLAN, "accepted"),
                (Step.PLAN_TO_LEAD, "accepted"),
                (Step.LEAD_APPROVAL, "approved"),
                (Step.LEAD_FINAL_APPROVAL, "accepted"),
            ]
            # Follow the chain of runs from the first; replay (and record) each.
            run_id: str | None = handle.first_execution_run_id or handle.result_run_id
            endings = []
            n = 0
            while run_id:
                n += 1
                history = await check_replay(
                    client, handle.id, f"continue_as_new_run{n}", run_id=run_id
                )
                endings.append(ending(history))
                assert continued_from_another_run(history) == (n > 1)
                last = history.events[-1]
                run_id = (
                    last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                    or None
                )
            assert endings == ["continued_as_new"] * (n - 1) + ["completed"]
    finally:
        server.stop()
