"""Thresholds enforced end to end, and idempotent starts."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory

from leo.api import HandoffFailed, LeoClient
from leo.domain.handoff_messages import HandoffOptions
from leo.domain.handoffs import HandoffType
from tests.support.db import fetch_one
from tests.support.factories import add_agent, create_sd, seed_accepted_handoff


async def plan_to_lead_ready(pool: asyncpg.Pool, *, sd_type: str, retro_quality: int) -> str:
    sd = await create_sd(
        pool, ready_for="PLAN-TO-LEAD", sd_type=sd_type, stories=[{"status": "completed"}]
    )
    await seed_accepted_handoff(pool, sd.id, "EXEC-TO-PLAN")
    await pool.execute(
        "INSERT INTO retrospectives (sd_id, quality_score) VALUES ($1, $2)", sd.id, retro_quality
    )
    return sd.id


@pytest.mark.parametrize(
    ("retro_quality", "expected_score", "accepted"),
    [(59, 89.75, False), (60, 90.0, True)],
)
async def test_security_sd_is_blocked_below_90_and_accepted_at_90(
    leo: LeoClient, db_pool: asyncpg.Pool, retro_quality: int, expected_score: float, accepted: bool
) -> None:
    # Four gates: three score 100, the retrospective gate scores the retro's quality.
    sd_id = await plan_to_lead_ready(db_pool, sd_type="security", retro_quality=retro_quality)

    result = await leo.run_handoff(HandoffType.PLAN_TO_LEAD, sd_id)

    assert result.normalized_score == expected_score
    assert result.threshold == 90
    assert result.accepted is accepted
    row = await fetch_one(
        db_pool,
        "SELECT status, validation_score::float8 AS score, rejection_reason FROM sd_phase_handoffs "
        "WHERE sd_id = $1 AND handoff_type = 'PLAN-TO-LEAD'",
        sd_id,
    )
    assert row["score"] == expected_score
    if accepted:
        assert row["status"] == "accepted" and result.new_phase == "LEAD_FINAL"
    else:
        assert row["status"] == "rejected" and result.failed_gate == "SD_TYPE_THRESHOLD"
        assert "requires a gate score of at least 90%" in row["rejection_reason"]
        phase = await db_pool.fetchval(
            "SELECT current_phase FROM strategic_directives_v2 WHERE id = $1", sd_id
        )
        assert phase == "EXEC_COMPLETE"


async def test_duplicate_starts_yield_one_execution_and_one_set_of_rows(
    leo: LeoClient, client: Client, db_pool: asyncpg.Pool
) -> None:
    agent = await add_agent(db_pool, metadata={"seconds": 1})
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    options = HandoffOptions(extra_sub_agents=[agent])

    handles = await asyncio.gather(
        *[leo.start_handoff(HandoffType.LEAD_TO_PLAN, sd.sd_key, options=options) for _ in range(3)]
    )
    run_ids = {h.result_run_id or (await h.describe()).run_id for h in handles}
    results = [await leo.wait(h) for h in handles]
    assert len(run_ids) == 1
    assert all(r.accepted for r in results) and len({r.run_id for r in results}) == 1

    # Starting an accepted handoff again returns its first result; nothing runs again.
    again = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.sd_key, options=options)
    assert again.run_id == results[0].run_id and again.audit_id == results[0].audit_id
    count = await client.count_workflows(f"WorkflowId = 'LEAD-TO-PLAN:{sd.id}'")
    assert count.count == 1
    assert (
        await db_pool.fetchval("SELECT count(*) FROM sd_transition_audit WHERE sd_id = $1", sd.id)
        == 1
    )
    assert (
        await db_pool.fetchval(
            "SELECT count(*) FROM sub_agent_execution_results WHERE sd_id = $1 AND sub_agent_code = $2",
            sd.id,
            agent,
        )
        == 1
    )


async def test_rejected_handoff_can_be_started_again_once_fixed(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    sd_id = await plan_to_lead_ready(db_pool, sd_type="security", retro_quality=10)
    first = await leo.run_handoff(HandoffType.PLAN_TO_LEAD, sd_id)
    assert not first.accepted

    await db_pool.execute(
        "INSERT INTO retrospectives (sd_id, quality_score) VALUES ($1, 100)", sd_id
    )
    second = await leo.run_handoff(HandoffType.PLAN_TO_LEAD, sd_id)

    assert second.accepted and second.run_id != first.run_id
    statuses = await db_pool.fetch(
        "SELECT status FROM sd_phase_handoffs WHERE sd_id = $1 AND handoff_type = 'PLAN-TO-LEAD' ORDER BY created_at",
        sd_id,
    )
    assert [r["status"] for r in statuses] == ["rejected", "accepted"]
    handle = leo.client.get_workflow_handle(f"PLAN-TO-LEAD:{sd_id}", run_id=first.run_id)
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED


async def test_wrong_phase_fails_fast_without_running_sub_agents(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")

    with pytest.raises(HandoffFailed) as failure:
        await leo.run_handoff(HandoffType.EXEC_TO_PLAN, sd.id)

    assert failure.value.code == "INVALID_PHASE"
    assert "expects active / EXEC" in str(failure.value)
    assert (
        await db_pool.fetchval(
            "SELECT count(*) FROM sub_agent_execution_results WHERE sd_id = $1", sd.id
        )
        == 0
    )
    assert (
        await db_pool.fetchval("SELECT count(*) FROM sd_transition_audit WHERE sd_id = $1", sd.id)
        == 0
    )


async def test_workflow_started_under_another_id_is_refused(
    client: Client, task_queue: str, db_pool: asyncpg.Pool
) -> None:
    from leo.domain.handoff_messages import HandoffInput
    from workflows.lead_to_plan import LeadToPlanWorkflow

    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", uuid_id=True)
    handle = await client.start_workflow(
        LeadToPlanWorkflow.run,
        HandoffInput(sd_id=sd.sd_key),
        id=f"LEAD-TO-PLAN:{sd.sd_key}",
        task_queue=task_queue,
    )
    leo = LeoClient(client, None, task_queue)
    with pytest.raises(HandoffFailed) as failure:
        await leo.wait(handle)
    assert failure.value.code == "WRONG_WORKFLOW_ID"
    assert f"LEAD-TO-PLAN:{sd.id}" in str(failure.value)


async def test_concurrent_lock_is_retried_until_the_sd_is_free(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    async with db_pool.acquire() as holder:
        # Another transition of this SD holds its advisory lock for two seconds.
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT pg_advisory_xact_lock(leo_sd_lock_key($1))", sd.id)
        handle = await leo.start_handoff(HandoffType.LEAD_TO_PLAN, sd.id)
        await asyncio.sleep(2)
        await tx.commit()
    result = await leo.wait(handle)

    assert result.accepted
    # The lock refuses the snapshot's dry run (or the commit): either is retried, not failed.
    assert max(activity_attempts(await handle.fetch_history())) > 1, "no CONCURRENT_LOCK retry"
    assert (
        await db_pool.fetchval("SELECT count(*) FROM sd_transition_audit WHERE sd_id = $1", sd.id)
        == 1
    )


def activity_attempts(history: WorkflowHistory) -> list[int]:
    """Attempt numbers of every activity in a history, local activities (markers) included."""
    attempts = []
    for event in history.events:
        if event.HasField("activity_task_started_event_attributes"):
            attempts.append(event.activity_task_started_event_attributes.attempt)
        if event.HasField("marker_recorded_event_attributes"):
            data = event.marker_recorded_event_attributes.details.get("data")
            if data is not None and data.payloads:
                attempts.append(json.loads(data.payloads[0].data).get("attempt", 1))
    return attempts
