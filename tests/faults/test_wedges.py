"""No input wedges a run (issue 20 item 3; review M4 to M7). Each input that once left a run
retrying for ever is now a clear refusal naming the field, or an ERROR result naming it; and
after each, the next handoff on the same worker is accepted.

- a NUL character (PostgreSQL cannot store it) in EXEC's report, an SD field, an agent's output;
- an unknown `sub_agent_verdict` in a stored accepted record;
- EXEC's report whose commits would push the SD's metadata over its limit;
- 200,000 `extra_sub_agents`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from leo.api import LeoClient, LifecycleClient
from leo.domain.budget import EXEC_REPORT_COMMITS_BYTES, MAX_SUB_AGENTS, SD_FIELD_LIMITS
from leo.domain.handoff_messages import HandoffOptions
from leo.domain.handoffs import HandoffType, Step
from leo.domain.lifecycle_messages import ExecReport
from leo.domain.verdicts import Verdict
from tests.cli.helpers import Leo
from tests.faults.test_bad_input import cli, table_counts  # noqa: F401 - the `cli` fixture
from tests.support.db import snapshot
from tests.support.factories import add_agent, create_sd
from tests.workflows.test_sd_lifecycle import EVIDENCE, REPORT, lifecycle_sd, wait_until
from tests.workflows.test_sub_agents import by_code, exec_ready_sd

NUL = "\x00"


async def next_handoff_is_accepted(leo: LeoClient, db_pool: asyncpg.Pool) -> None:
    """The worker is not wedged: a fresh SD's LEAD-TO-PLAN is accepted on it."""
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    async with asyncio.timeout(60):
        result = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id)
    assert result.accepted, result


async def task_failures(client: Client, workflow_id: str) -> int:
    events = (await client.get_workflow_handle(workflow_id).fetch_history()).events
    return sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED for e in events)


async def reports(db_pool: asyncpg.Pool, sd_id: str) -> int:
    count: int = await db_pool.fetchval(
        "SELECT count(*) FROM sd_exec_reports WHERE sd_id = $1", sd_id
    )
    return count


# --- EXEC's report: a NUL, and commits the SD's metadata cannot hold ---------------------------


async def test_exec_reports_with_a_nul_or_too_many_commits_are_refused_and_a_good_one_goes_on(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    lifecycle = LifecycleClient(leo)
    # The SD's metadata already near its limit: room for a few commits, not for 200.
    room = SD_FIELD_LIMITS["metadata"] - 1_000
    sd = await lifecycle_sd(db_pool, metadata={**EVIDENCE, "notes": "n" * (room - 100)})
    handle = await lifecycle.start(sd.id)
    try:
        await wait_until(lifecycle, sd.id, "exec_complete", timeout=90)
        refusals: dict[str, str] = {}
        cases: dict[str, dict[str, Any]] = {
            "nul in summary": {"summary": f"done{NUL}"},
            "nul deep in evidence": {"summary": "done", "evidence": {"log": ["ok", f"a{NUL}"]}},
            "nul in a key": {"summary": "done", "test_results": {f"k{NUL}": "passing"}},
            "commits over half the metadata limit": {
                "summary": "done",
                "commits": [f"{i:040x}" for i in range(400)],
            },
            "commits over the room left": {
                "summary": "done",
                "commits": [f"{i:040x}" for i in range(100)],
            },
        }
        for name, report in cases.items():
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                async with asyncio.timeout(30):  # once: the activity kept retrying for ever
                    await lifecycle.report_exec_complete(
                        sd.id, ExecReport.model_construct(**report)
                    )
            cause = refused.value.cause
            assert isinstance(cause, ApplicationError), (name, cause)
            refusals[name] = f"{cause.type}: {cause}"
        assert refusals["nul in summary"].startswith("INVALID_INPUT: ")
        assert "`summary` contains a NUL character" in refusals["nul in summary"]
        assert "`evidence.log[1]` contains a NUL" in refusals["nul deep in evidence"]
        assert "`test_results.k\\u0000` contains a NUL" in refusals["nul in a key"]
        over_half = refusals["commits over half the metadata limit"]
        assert over_half.startswith("INVALID_INPUT: ") and "`commits`" in over_half
        assert f"at most {EXEC_REPORT_COMMITS_BYTES:,}" in over_half
        over_room = refusals["commits over the room left"]
        assert over_room.startswith("SD_TOO_LARGE: ") and "`metadata`" in over_room
        assert "the limit is 16.0 KiB" in over_room
        # Nothing of them was recorded, and the lifecycle still waits for the report.
        assert await reports(db_pool, sd.id) == 0
        assert (await lifecycle.status(sd.id)).waiting_for == "exec_complete"

        # A good report is taken, and the next handoff (EXEC-TO-PLAN) is accepted.
        await lifecycle.report_exec_complete(sd.id, REPORT)
        status = await wait_until(lifecycle, sd.id, "approval", timeout=90)
        assert any(s.step == Step.EXEC_TO_PLAN and s.outcome == "accepted" for s in status.steps)
        assert await reports(db_pool, sd.id) == 1
    finally:
        await handle.cancel()


def test_a_report_is_refused_exactly_when_its_commits_would_overflow_the_sd_metadata() -> None:
    from leo.domain.budget import BudgetExceededError, check_report_commits, json_size

    limit = SD_FIELD_LIMITS["metadata"]
    commits = ["c" * 40] * 10
    fits = {"notes": "n" * (limit - json_size({"notes": "", "commits": commits}))}
    check_report_commits(fits, commits)
    assert json_size({**fits, "commits": commits}) == limit
    with pytest.raises(BudgetExceededError, match="`metadata`"):
        check_report_commits({**fits, "notes": fits["notes"] + "n"}, commits)
    # Appended the way the SQL function appends: to a list, after a scalar.
    with pytest.raises(BudgetExceededError):
        check_report_commits({**fits, "commits": ["x"]}, commits)
    check_report_commits({"commits": "abc"}, commits)


# --- An SD field ------------------------------------------------------------------------------


async def test_a_nul_in_an_sd_update_is_refused_naming_the_field_and_the_sd_still_moves(
    cli: Leo,  # noqa: F811 - the fixture imported above
    leo: LeoClient,
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    before = await snapshot(db_pool, sd.id)
    for expression in ('description:="a\\u0000b"', 'metadata.note:="x\\u0000"'):
        result = await cli("sd", "update", sd.id, "--set", expression)
        assert result.exit_code == 2, result.output
        assert result.stdout == "" and "Traceback" not in result.stderr
        field = expression.partition(":")[0]
        assert f"`{field}` contains a NUL character" in result.stderr, result.stderr
    assert await snapshot(db_pool, sd.id) == before

    async with asyncio.timeout(60):
        handoff = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id)
    assert handoff.accepted


# --- An agent's output ------------------------------------------------------------------------

NUL_OUTPUT = json.dumps({"verdict": "PASS", "confidence": 90, "critical_issues": ["a\u0000b"]})
NUL_STDERR = "import sys; sys.stderr.write('broke\\x00here'); sys.exit(3)"


async def test_a_nul_in_an_agents_output_is_an_error_naming_the_field_and_the_handoff_commits(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    printed = await add_agent(
        db_pool, kind="command", ref=["{python}", "-c", f"print({NUL_OUTPUT!r})"], priority=40
    )
    stderr = await add_agent(db_pool, kind="command", ref=["{python}", "-c", NUL_STDERR])
    sd_id = await exec_ready_sd(db_pool)

    async with asyncio.timeout(90):  # once: the commit failed on every retry
        result = await leo.run_handoff(
            HandoffType.EXEC_TO_PLAN,
            sd_id,
            options=HandoffOptions(extra_sub_agents=[printed, stderr]),
        )

    agents = by_code(result)
    assert agents[printed].verdict == Verdict.ERROR
    assert "`critical_issues[0]` contains a NUL character" in agents[printed].critical_issues[0]
    # Text LEO writes about an agent (its stderr here) keeps the NUL, escaped.
    assert agents[stderr].verdict == Verdict.ERROR
    assert "broke\\u0000here" in agents[stderr].critical_issues[0]
    assert result.accepted and result.sub_agent_verdict.verdict == Verdict.CONDITIONAL_PASS
    stored = await db_pool.fetchval(
        "SELECT critical_issues::text FROM sub_agent_execution_results "
        "WHERE sd_id = $1 AND sub_agent_code = $2",
        sd_id,
        stderr,
    )
    assert "broke\\\\u0000here" in stored
    await next_handoff_is_accepted(leo, db_pool)


# --- An unknown verdict in a stored record ----------------------------------------------------


async def test_an_accepted_record_with_an_unknown_verdict_is_returned_not_retried_for_ever(
    leo: LeoClient, client: Client, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    workflow_id = f"LEAD-TO-PLAN:{sd.id}"
    # A record written by a direct call of the transition function, shaped as the worker's,
    # with a verdict outside LEO's set (the function does not check the gate summary's words).
    context = {
        "request_id": f"{workflow_id}/direct-call",
        "gate_summary": {"passed": True, "normalized_score": 90, "sub_agent_verdict": "APPROVED"},
        "metadata": {"workflow_id": workflow_id, "run_id": "direct-call"},
    }
    written = await db_pool.fetchval(
        "SELECT fn_atomic_lead_to_plan_transition(p_sd_id => $1, p_prd_id => NULL, "
        "p_session_id => NULL, p_transition_context => $2)",
        sd.id,
        context,
    )
    assert written["success"], written

    # A new run of the handoff (its workflow id is the SD's) reads that record.
    handle = await client.start_workflow(
        "LEAD-TO-PLAN", {"sd_id": sd.id}, id=workflow_id, task_queue=task_queue
    )
    async with asyncio.timeout(30):  # once: its workflow task failed for ever
        again = await handle.result()
    assert again["accepted"] and again["idempotent_hit"]
    assert again["sub_agent_verdict"]["verdict"] == Verdict.PASS.value
    assert await task_failures(client, workflow_id) == 0
    await next_handoff_is_accepted(leo, db_pool)


# --- 200,000 extra agents ----------------------------------------------------------------------


async def test_200k_extra_sub_agents_are_refused_at_once_naming_the_field_and_the_limit(
    leo: LeoClient, client: Client, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    before = await table_counts(db_pool)
    codes = [f"A{i}" for i in range(200_000)]
    workflow_id = f"LEAD-TO-PLAN:{sd.id}"
    started = time.monotonic()
    handle = await client.start_workflow(
        "LEAD-TO-PLAN",
        {"sd_id": sd.id, "options": {"extra_sub_agents": codes}},
        id=workflow_id,
        task_queue=task_queue,
    )
    with pytest.raises(WorkflowFailureError) as failed:
        async with asyncio.timeout(30):
            await handle.result()
    seconds = time.monotonic() - started
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "INVALID_INPUT"
    assert "extra_sub_agents" in str(cause) and f"at most {MAX_SUB_AGENTS} items" in str(cause)
    assert seconds < 10, seconds
    assert await task_failures(client, workflow_id) == 0
    assert await table_counts(db_pool) == before
    await next_handoff_is_accepted(leo, db_pool)


# --- A gate's result (the same commit path as an agent's output) ---------------------------------


def test_a_nul_in_a_gates_result_or_error_never_reaches_the_commit() -> None:
    from leo.domain.gates import GateStatus
    from leo.gates.core import Gate, evaluate_gates
    from tests.support import builders

    def raises(ctx: object) -> object:
        raise RuntimeError(f"broke{NUL}here")

    result = {"passed": True, "score": 90.0, "max_score": 100.0, "issues": [f"a{NUL}"]}
    context = builders.gate_context(sd_type="feature")
    [nul_result] = evaluate_gates([Gate("NUL_RESULT", lambda ctx: result)], context).gates
    [nul_raise] = evaluate_gates([Gate("NUL_RAISE", raises)], context).gates
    assert nul_result.status is GateStatus.FAILED
    assert "`issues[0]` contains a NUL character" in nul_result.issues[0]
    assert nul_raise.status is GateStatus.FAILED and "broke\\u0000here" in nul_raise.issues[0]
    assert not any(NUL in issue for g in (nul_result, nul_raise) for issue in g.issues)


# --- A start's input ------------------------------------------------------------------------------


@pytest.mark.parametrize("workflow_type", ["LEAD-TO-PLAN", "SD-LIFECYCLE"])
async def test_a_nul_in_a_start_input_fails_it_at_once_naming_the_field(
    leo: LeoClient, client: Client, db_pool: asyncpg.Pool, task_queue: str, workflow_type: str
) -> None:
    from tests.faults.test_malformed_starts import outcome

    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    before = await snapshot(db_pool, sd.id)
    workflow_id = f"{workflow_type}:{sd.id}"
    started = time.monotonic()
    await client.start_workflow(
        workflow_type,
        {"sd_id": sd.id, "session_id": f"s{NUL}"},
        id=workflow_id,
        task_queue=task_queue,
    )
    result = await outcome(client, workflow_id, started)
    assert (result.failure_type, result.activities, result.task_failures) == (
        "INVALID_INPUT",
        0,
        0,
    ), result
    assert "`session_id` contains a NUL character" in (result.message or "")
    assert await snapshot(db_pool, sd.id) == before
    await next_handoff_is_accepted(leo, db_pool)
