"""The payload budget (leo/domain/budget.py): a handoff never wedges on Temporal's payload
limits, and the database and Temporal never disagree about it.

Before the budget, seven agents printing just under their 1 MB cap made the commit apply the
transition and the workflow task then fail with PAYLOADS_TOO_LARGE for ever; an SD with a 5 MB
description or 5,000 stories stayed Running (or was terminated naming neither field nor limit).
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.handoff import CommitHandoffInput, HandoffActivities, LoadSnapshotInput
from leo.api import HandoffFailed, LeoClient, LifecycleClient
from leo.domain.budget import (
    AGENT_RESULT_BUDGET_BYTES,
    MAX_STORIES,
    PAYLOAD_BUDGET_BYTES,
    SD_FIELD_LIMITS,
    BudgetExceededError,
    check_result_budget,
    json_size,
)
from leo.domain.handoffs import HandoffType, workflow_id_for
from leo.domain.verdicts import SubAgentResult, Verdict, aggregate, fit_result
from leo.gates.builtin import default_registry
from leo.gates.core import GateEvaluation
from tests.support.db import snapshot
from tests.support.factories import add_agent, create_sd, seed_accepted_handoff
from tests.support.workflows import start_handoff

EVIDENCE = {"commits": ["abc123"], "security_findings": []}
# Just under the executor's 1,000,000-byte stdout cap, and valid AgentOutput.
MAX_OUTPUT_AGENT = [
    "{python}",
    "-c",
    "import json; print(json.dumps({'verdict': 'PASS', 'confidence': 90, "
    "'warnings': ['w' * 9800] * 100, 'detailed_analysis': 'a' * 19000}))",
]


async def bulk_stories(pool: asyncpg.Pool, sd_id: str, count: int) -> None:
    await pool.executemany(
        "INSERT INTO user_stories (story_key, sd_id, title, status, acceptance_criteria) "
        "VALUES ($1, $2, $3, 'in_progress', $4)",
        [(f"{sd_id}:US-{n:05d}", sd_id, f"Story {n}", ["given/when/then"]) for n in range(count)],
    )


async def refusal(client: Client, task_queue: str, sd_id: str) -> ApplicationError:
    handle = await start_handoff(client, task_queue, HandoffType.LEAD_TO_PLAN, sd_id)
    with pytest.raises(WorkflowFailureError) as failed:
        async with asyncio.timeout(60):  # before the budget: Running for good
            await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def no_agent_ran(pool: asyncpg.Pool, sd_id: str) -> bool:
    return not await pool.fetchval(
        "SELECT count(*) FROM sub_agent_execution_results WHERE sd_id = $1", sd_id
    )


async def test_seven_agents_at_maximum_output_complete_and_the_database_agrees(
    leo: LeoClient, client: Client, db_pool: asyncpg.Pool
) -> None:
    agents = [
        await add_agent(db_pool, kind="command", ref=MAX_OUTPUT_AGENT, priority=40)
        for _ in range(7)
    ]
    sd = await create_sd(
        db_pool,
        ready_for="EXEC-TO-PLAN",
        sd_type="infrastructure",
        metadata=EVIDENCE,
        stories=[{"status": "in_progress"}],
    )
    await seed_accepted_handoff(db_pool, sd.id, "PLAN-TO-EXEC")
    before = await snapshot(db_pool, sd.id)

    async with asyncio.timeout(90):  # before the budget: Running for good
        result = await leo.run_handoff(
            HandoffType.EXEC_TO_PLAN,
            sd.id,
            options={"extra_sub_agents": agents},  # type: ignore[arg-type]
        )

    assert result.accepted
    assert json_size(result) < PAYLOAD_BUDGET_BYTES
    ours = {r.code: r for r in result.sub_agents if r.code in agents}
    assert set(ours) == set(agents)
    for r in ours.values():
        assert r.verdict is Verdict.PASS
        assert json_size(r) <= AGENT_RESULT_BUDGET_BYTES
        assert "trimmed" in r.warnings[0] and "sub_agent_execution_results" in r.warnings[0]
    # The database keeps every agent's whole output.
    rows = await db_pool.fetch(
        "SELECT jsonb_array_length(warnings) AS n, length(detailed_analysis) AS chars "
        "FROM sub_agent_execution_results WHERE sd_id = $1 AND sub_agent_code = ANY($2)",
        sd.id,
        agents,
    )
    assert [(r["n"], r["chars"]) for r in rows] == [(100, 19000)] * 7
    # Temporal and the database agree: completed, one accepted handoff, one completed audit.
    handle = client.get_workflow_handle(workflow_id_for(HandoffType.EXEC_TO_PLAN, sd.id))
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    # The whole history, nine agents included, stays far below one payload's 2 MiB limit.
    history = await handle.fetch_history()
    history_bytes = sum(e.ByteSize() for e in history.events)
    print(
        f"7 agents at maximum output: result {json_size(result):,} B, history {history_bytes:,} B"
    )
    assert history_bytes < 1_000_000
    after = await snapshot(db_pool, sd.id)
    assert after.sd["transition_version"] == before.sd["transition_version"] + 1
    assert [a["status"] for a in after.audits] == ["completed"]
    assert [h["status"] for h in after.handoffs if h["handoff_type"] == "EXEC-TO-PLAN"] == [
        "accepted"
    ]


async def test_a_5_mb_description_is_refused_at_once_naming_the_field_and_limit(
    client: Client, task_queue: str, db_pool: asyncpg.Pool
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", description="d" * 5_000_000)
    before = await snapshot(db_pool, sd.id)

    cause = await refusal(client, task_queue, sd.id)

    assert cause.type == "SD_TOO_LARGE" and cause.non_retryable
    assert "`description`" in cause.message
    assert f"{SD_FIELD_LIMITS['description'] / 1024:.1f} KiB" in cause.message
    assert await snapshot(db_pool, sd.id) == before
    assert await no_agent_ran(db_pool, sd.id)


async def test_5000_stories_are_refused_at_once_naming_the_field_and_limit(
    client: Client, task_queue: str, db_pool: asyncpg.Pool
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    await bulk_stories(db_pool, sd.id, 5000)
    before = await snapshot(db_pool, sd.id)

    cause = await refusal(client, task_queue, sd.id)

    assert cause.type == "SD_TOO_LARGE" and cause.non_retryable
    assert "5,000 `stories`" in cause.message and f"limit is {MAX_STORIES}" in cause.message
    assert await snapshot(db_pool, sd.id) == before
    assert await no_agent_ran(db_pool, sd.id)


async def test_a_long_metadata_commit_list_is_refused_naming_metadata(
    client: Client, task_queue: str, db_pool: asyncpg.Pool
) -> None:
    commits = [uuid.uuid4().hex for _ in range(20_000)]
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", metadata={"commits": commits})

    cause = await refusal(client, task_queue, sd.id)

    assert cause.type == "SD_TOO_LARGE" and "`metadata`" in cause.message


async def test_a_lifecycle_over_a_too_large_sd_stops_clearly_and_resumes_once_it_is_fixed(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    lifecycle = LifecycleClient(leo)
    sd = await create_sd(
        db_pool,
        sd_type="infrastructure",
        metadata=EVIDENCE,
        description="d" * 5_000_000,
    )
    before = await snapshot(db_pool, sd.id)
    handle = await lifecycle.start(sd.id, max_retries=1)
    try:
        async with asyncio.timeout(90):
            while (status := await lifecycle.status(sd.id)).waiting_for != "retry":
                await asyncio.sleep(0.2)
        step = status.steps[-1]
        assert (step.step.value, step.outcome, step.failed_gate) == (
            "LEAD-TO-PLAN",
            "rejected",
            "SD_TOO_LARGE",
        )
        assert "`description`" in step.issues[0]
        assert "SD_TOO_LARGE" in (status.last_rejection or "") or "description" in (
            status.last_rejection or ""
        )
        after = await snapshot(db_pool, sd.id)
        # Claimed by the lifecycle, nothing else: no transition, no handoff, no audit row.
        fields = ("status", "current_phase", "transition_version")
        assert [after.sd[f] for f in fields] == [before.sd[f] for f in fields]
        assert (after.handoffs, after.audits) == (before.handoffs, [])

        # Shortened, then retried: the chain goes on from there.
        await db_pool.execute(
            "UPDATE strategic_directives_v2 SET description = 'short' WHERE id = $1", sd.id
        )
        await lifecycle.retry(sd.id, reason="description shortened")
        async with asyncio.timeout(120):
            while not any(
                s.step.value == "LEAD-TO-PLAN" and s.outcome == "accepted"
                for s in (await lifecycle.status(sd.id)).steps
            ):
                await asyncio.sleep(0.2)
    finally:
        await handle.cancel()
        with pytest.raises((HandoffFailed, WorkflowFailureError, asyncio.CancelledError)):
            await handle.result()


def _agent(code: str, size: int) -> SubAgentResult:
    return SubAgentResult(
        code=code,
        name=code,
        priority=40,
        verdict=Verdict.PASS,
        confidence=90,
        warnings=tuple("w" * 1000 for _ in range(size // 1000)),
    )


def test_an_agent_result_over_its_share_is_trimmed_with_a_warning() -> None:
    big = _agent("BIG", 500_000).model_copy(update={"result_id": "42"})
    fitted = fit_result(big)
    assert json_size(fitted) <= AGENT_RESULT_BUDGET_BYTES
    assert (fitted.verdict, fitted.confidence) == (big.verdict, big.confidence)
    assert fitted.warnings[0].startswith("BIG output trimmed from ")
    assert "row 42" in fitted.warnings[0]
    small = _agent("SMALL", 2000)
    assert fit_result(small) is small


def test_a_result_too_large_to_carry_is_refused_before_the_transition() -> None:
    agents = [_agent(f"A{n}", 20_000) for n in range(12)]
    evaluation = GateEvaluation(passed=True, normalized_score=100, threshold=85, sd_type="feature")
    with pytest.raises(BudgetExceededError) as refused:
        check_result_budget(agents, evaluation, aggregate(agents))
    assert refused.value.code == "PAYLOAD_TOO_LARGE"
    assert "the handoff's result" in str(refused.value) and "200.0 KiB" in str(refused.value)
    check_result_budget(agents[:1], evaluation, aggregate(agents[:1]))


async def test_the_commit_step_applies_nothing_when_its_result_could_not_be_carried(
    db_pool: asyncpg.Pool,
) -> None:
    """The commit step itself, on the real database: results over the budget (as an agent that
    bypassed trimming would give) are refused before the transition, and the SD is untouched."""
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    before = await snapshot(db_pool, sd.id)
    activities = HandoffActivities(db_pool, default_registry())
    env = ActivityEnvironment()
    loaded = await env.run(
        activities.load_handoff_snapshot,
        LoadSnapshotInput(handoff_type=HandoffType.LEAD_TO_PLAN, sd_id=sd.id),
    )
    agents = [_agent(spec.code, 120_000) for spec in loaded.sub_agents]
    request = CommitHandoffInput(
        handoff_type=HandoffType.LEAD_TO_PLAN,
        snapshot=loaded,
        sub_agents=agents,
        request_id=f"budget-test-{uuid.uuid4()}",
    )

    with pytest.raises(ApplicationError) as refused:
        await env.run(activities.commit_handoff, request)

    assert refused.value.type == "PAYLOAD_TOO_LARGE" and refused.value.non_retryable
    assert await snapshot(db_pool, sd.id) == before
    # The same request within budget commits: the check is what stopped it.
    fitted = request.model_copy(update={"sub_agents": [fit_result(a) for a in agents]})
    committed = await env.run(activities.commit_handoff, fitted)
    assert committed.accepted
