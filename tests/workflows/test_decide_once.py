"""Decided once: the first verdict committed under a handoff's request id is the one applied,
recorded and reported, however often the gates run again; an accepted handoff started again
returns its accepted record."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from activities.handoff import CommitHandoffInput, HandoffActivities, LoadSnapshotInput
from leo.api import LeoClient
from leo.dev_stack import Stack, temporal_binary
from leo.domain.budget import PAYLOAD_BUDGET_BYTES, json_size
from leo.domain.handoff_messages import HandoffOptions
from leo.domain.handoffs import HandoffType
from leo.domain.refusals import FailureType
from leo.gates.builtin import default_registry
from leo.gates.core import Gate, GateContext, GateRegistry
from leo.runtime import build_worker
from tests.support.factories import add_agent, create_sd, seed_accepted_handoff
from tests.support.faults import wait_until
from tests.support.workflows import check_replay
from workflows.steps import MAX_REJUDGES

APPLY_STEPS = (
    "decide_and_commit_handoff",
    "commit_handoff_decision",
    "apply_handoff_decision",
    "commit_handoff",
)


class LoseFirstReply(Interceptor):
    """The first attempt of the step that writes the decision does its work (the database
    commits) and then fails, as when the worker's reply is lost: the step is retried."""

    def __init__(self) -> None:
        self.lost: list[str] = []

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        lost = self.lost

        class Inbound(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                result = await super().execute_activity(input)
                info = activity.info()
                if info.activity_type in APPLY_STEPS and info.attempt == 1:
                    lost.append(info.activity_type)
                    raise ApplicationError("the reply was lost after the commit (test)")
                return result

        return Inbound(next)


def flipping_gate(calls: Counter[str], first_passes: bool) -> Gate:
    """A plugin gate that answers differently the second time (it reads the clock, say)."""

    def check(ctx: GateContext) -> dict[str, Any]:
        calls[ctx.snapshot.sd.id] += 1
        passed = first_passes if calls[ctx.snapshot.sd.id] == 1 else not first_passes
        issues = [] if passed else ["the flipping gate said no this time"]
        return {"passed": passed, "score": 100 if passed else 0, "max_score": 100, "issues": issues}

    return Gate("PROJECT_FLIPPING", check)


def verbose_gate(ctx: GateContext) -> dict[str, Any]:
    """Passes or fails as the SD's metadata says, with about 180 KB of messages."""
    messages = [f"finding {n:05d}: " + "x" * 48 for n in range(3000)]
    if ctx.snapshot.sd.metadata.get("verbose_gate") == "fail":
        return {"passed": False, "score": 0, "max_score": 100, "issues": messages}
    return {"passed": True, "score": 100, "max_score": 100, "issues": [], "warnings": messages}


@asynccontextmanager
async def worker_with(
    client: Client, pool: asyncpg.Pool, gates: GateRegistry, **options: Any
) -> AsyncIterator[LeoClient]:
    queue = f"leo-decide-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, pool, task_queue=queue, gates=gates, **options):
        yield LeoClient(client, pool, queue)


@pytest.mark.parametrize("first_passes", [True, False], ids=["pass-then-fail", "fail-then-pass"])
async def test_a_lost_reply_reapplies_the_recorded_verdict(
    client: Client, db_pool: asyncpg.Pool, first_passes: bool
) -> None:
    calls: Counter[str] = Counter()
    gates = default_registry()
    gates.add(HandoffType.LEAD_TO_PLAN, flipping_gate(calls, first_passes))
    lose = LoseFirstReply()
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")

    async with worker_with(client, db_pool, gates, interceptors=[lose]) as leo:
        result = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id)

    assert lose.lost, "the apply step's first reply was not lost"
    # The retry evaluated the gates again and got the other answer (the gate flips), yet the
    # first verdict committed under the request id is the one applied and reported.
    assert calls[sd.id] == 2
    # The workflow reports what the database holds.
    assert result.accepted is first_passes
    rows = await db_pool.fetch(
        "SELECT status, id::text AS id FROM sd_phase_handoffs WHERE sd_id = $1", sd.id
    )
    assert [r["status"] for r in rows] == ["accepted" if first_passes else "rejected"]
    assert result.handoff_id == rows[0]["id"]
    phase = await db_pool.fetchval(
        "SELECT current_phase FROM strategic_directives_v2 WHERE id = $1", sd.id
    )
    assert phase == ("PLAN_PRD" if first_passes else "LEAD_APPROVAL")
    audits = await db_pool.fetchval(
        "SELECT count(*) FROM sd_transition_audit WHERE sd_id = $1", sd.id
    )
    assert audits == (1 if first_passes else 0)


@pytest.mark.parametrize("verdict", ["pass", "fail"])
async def test_an_oversized_gate_summary_is_bounded_and_recorded(
    client: Client, db_pool: asyncpg.Pool, verdict: str
) -> None:
    gates = default_registry()
    gates.add(HandoffType.LEAD_TO_PLAN, Gate("PROJECT_VERBOSE", verbose_gate))
    sd = await create_sd(
        db_pool,
        ready_for="LEAD-TO-PLAN",
        sd_type="infrastructure",
        metadata={"verbose_gate": verdict},
    )

    async with worker_with(client, db_pool, gates) as leo:
        result = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id)

    assert result.accepted is (verdict == "pass")
    row = await db_pool.fetchrow(
        "SELECT id::text AS id, status, validation_details, rejection_reason "
        "FROM sd_phase_handoffs WHERE sd_id = $1",
        sd.id,
    )
    assert row is not None, "the handoff was not recorded"
    assert row["status"] == ("accepted" if verdict == "pass" else "rejected")
    assert result.handoff_id == row["id"]
    details = row["validation_details"]
    assert details["truncated"] is True
    [verbose] = [g for g in details["gate_results"] if g["name"] == "PROJECT_VERBOSE"]
    kept = verbose["warnings"] if verdict == "pass" else verbose["issues"]
    assert kept[0].startswith("finding 00000") and kept[-1] == "... and 2990 more"
    if verdict == "fail":
        assert row["rejection_reason"].startswith("PROJECT_VERBOSE: finding 00000")
    # The typed result keeps the gates' share of the payload budget (leo/domain/budget.py):
    # the first messages, then how many more there were.
    [outcome] = [g for g in result.gates if g.name == "PROJECT_VERBOSE"]
    messages = outcome.warnings if verdict == "pass" else outcome.issues
    assert messages[0].startswith("finding 00000")
    assert messages[-1].startswith(f"... and {3000 - len(messages) + 1} more (trimmed")
    assert json_size(result) < PAYLOAD_BUDGET_BYTES


async def test_a_rejection_that_cannot_be_recorded_is_an_error_saying_so(
    db_pool: asyncpg.Pool,
) -> None:
    # The request id already belongs to an accepted PLAN-TO-EXEC of this SD: recording a
    # rejection under it must fail loudly, not "succeed" with the accepted row's id.
    sd = await create_sd(db_pool, ready_for="PLAN-TO-EXEC", sd_type="infrastructure")
    await seed_accepted_handoff(db_pool, sd.id, "PLAN-TO-EXEC")
    acts = HandoffActivities(db_pool, default_registry())
    snapshot = await ActivityEnvironment().run(
        acts.load_handoff_snapshot,
        LoadSnapshotInput(handoff_type=HandoffType.PLAN_TO_EXEC, sd_id=sd.id),
    )

    with pytest.raises(ApplicationError) as failure:
        await acts.commit_handoff(
            CommitHandoffInput(
                handoff_type=HandoffType.PLAN_TO_EXEC,
                snapshot=snapshot,
                sub_agents=[],
                request_id=f"seed-PLAN-TO-EXEC-{sd.id}",
            )
        )

    assert failure.value.type == FailureType.REJECTION_NOT_RECORDED
    assert failure.value.non_retryable
    message = str(failure.value)
    assert f"the rejection of PLAN-TO-EXEC for {sd.id} was not recorded" in message
    assert "INVALID_INPUT" in message and "PLAN-TO-EXEC accepted" in message


async def test_starting_an_accepted_handoff_again_returns_its_accepted_result(
    leo: LeoClient, stack: Stack, task_queue: str, db_pool: asyncpg.Pool
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    first = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id)
    assert first.accepted
    agents_before = await db_pool.fetchval(
        "SELECT count(*) FROM sub_agent_execution_results WHERE sd_id = $1", sd.id
    )
    # The SD moves on; whatever happened since, LEAD-TO-PLAN stays accepted.
    await db_pool.execute(
        "UPDATE strategic_directives_v2 SET current_phase = 'EXEC', status = 'active' "
        "WHERE id = $1",
        sd.id,
    )

    # A plain `temporal workflow start`, no policy flags: the default reuse policy starts a
    # new run, which finds the accepted record and returns it.
    env = {**os.environ, "TEMPORAL_ADDRESS": stack.temporal_address}
    workflow_id = f"LEAD-TO-PLAN:{sd.id}"
    temporal = str(temporal_binary())
    argv = f"workflow start --type LEAD-TO-PLAN --task-queue {task_queue} --workflow-id".split()
    start = await asyncio.to_thread(
        subprocess.run,
        [temporal, *argv, workflow_id, "--input", json.dumps({"sd_id": sd.id})],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert start.returncode == 0, start.stdout + start.stderr
    cli_run = (await leo.client.get_workflow_handle(workflow_id).describe()).run_id
    shown = await asyncio.to_thread(
        subprocess.run,
        [temporal, "workflow", "result", "--workflow-id", workflow_id, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    compact = shown.stdout.replace(" ", "").replace("\n", "")
    assert '"accepted":true' in compact and '"idempotent_hit":true' in compact
    assert f'"audit_id":"{first.audit_id}"' in compact

    # The Python API (and so `leo handoff`) returns the same accepted result, every time.
    for _ in range(2):
        again = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id)
        assert again.accepted and again.audit_id == first.audit_id
        assert again.handoff_id == first.handoff_id
        assert again.new_phase == "PLAN_PRD" and again.normalized_score == first.normalized_score
        assert [g.name for g in again.gates] == [g.name for g in first.gates]

    # Nothing ran again: one transition, no new agent results, no failed runs.
    assert (
        await db_pool.fetchval("SELECT count(*) FROM sd_transition_audit WHERE sd_id = $1", sd.id)
        == 1
    )
    assert (
        await db_pool.fetchval(
            "SELECT count(*) FROM sub_agent_execution_results WHERE sd_id = $1", sd.id
        )
        == agents_before
    )
    # Visibility lags: wait until it lists both runs started (the first, the CLI's) as closed;
    # then every run it lists is one of them, and none failed.
    async with asyncio.timeout(30):
        while True:
            listed = {
                w.run_id: w.status
                async for w in leo.client.list_workflows(f"WorkflowId = '{workflow_id}'")
            }
            closed = WorkflowExecutionStatus.RUNNING not in listed.values()
            if {first.run_id, cli_run} <= listed.keys() and closed:
                break
            await asyncio.sleep(0.2)
    assert listed == {
        first.run_id: WorkflowExecutionStatus.COMPLETED,
        cli_run: WorkflowExecutionStatus.COMPLETED,
    }


async def test_prerequisite_is_found_behind_more_than_200_rejected_rows(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    sd = await create_sd(db_pool, ready_for="PLAN-TO-EXEC", sd_type="infrastructure")
    await seed_accepted_handoff(db_pool, sd.id, "LEAD-TO-PLAN")
    # Newer than the accepted record (handoff records are append-only: none is backdated).
    await db_pool.execute(
        "INSERT INTO sd_phase_handoffs (sd_id, handoff_type, from_phase, to_phase, status, "
        "request_id, created_at) SELECT $1, 'PLAN-TO-EXEC', 'PLAN', 'EXEC', 'rejected', "
        "'old-rejection-' || $1 || '-' || g, now() + interval '1 second' + g * interval '1 ms' "
        "FROM generate_series(1, 250) g",
        sd.id,
    )

    result = await leo.run_handoff(HandoffType.PLAN_TO_EXEC, sd.id)

    [prerequisite] = [g for g in result.gates if g.name == "PREREQUISITE_HANDOFF_CHECK"]
    assert prerequisite.status.value == "PASSED", prerequisite.issues


def runs(directory: Path) -> int:
    return len(list(directory.iterdir())) if directory.exists() else 0


async def ran(directory: Path, times: int) -> bool:
    return runs(directory) >= times


async def bump_version_on_each_run(
    pool: asyncpg.Pool, sd_id: str, markers: Path, times: int
) -> None:
    """The SD changes while the agent runs: once per run of the agent, `times` times."""
    for n in range(1, times + 1):
        await wait_until(partial(ran, markers, n), timeout=60, what=f"run {n} of the agent")
        await pool.execute(
            "UPDATE strategic_directives_v2 SET transition_version = transition_version + 1 "
            "WHERE id = $1",
            sd_id,
        )


async def audit_trail(pool: asyncpg.Pool, sd_id: str) -> list[tuple[str, str | None]]:
    rows = await pool.fetch(
        "SELECT status, error_details ->> 'error_code' AS code FROM sd_transition_audit "
        "WHERE sd_id = $1 ORDER BY started_at",
        sd_id,
    )
    return [(r["status"], r["code"]) for r in rows]


async def test_an_sd_that_changed_while_the_handoff_ran_is_judged_again_by_itself(
    leo: LeoClient, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    markers = tmp_path / "slow"
    slow = await add_agent(db_pool, metadata={"seconds": 1.0, "marker_dir": str(markers)})
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    handle = await leo.start_handoff(
        HandoffType.LEAD_TO_PLAN, sd.id, options=HandoffOptions(extra_sub_agents=[slow])
    )
    await bump_version_on_each_run(db_pool, sd.id, markers, times=1)

    result = await leo.wait(handle)

    # Judged again on the new version: a new snapshot; the agent, whose input (the SD's
    # version) changed, ran again; accepted without a human retry.
    assert result.accepted and result.transition_version == 3
    assert runs(markers) == 2
    # The refused first verdict left its failed audit row, with its result rows.
    assert await audit_trail(db_pool, sd.id) == [
        ("failed", "VERSION_CONFLICT"),
        ("completed", None),
    ]
    rows = await db_pool.fetchval(
        "SELECT count(*) FROM sub_agent_execution_results WHERE sd_id = $1 AND sub_agent_code = $2",
        sd.id,
        slow,
    )
    assert rows == 2
    # Into the replay corpus when recording: a run that judged the SD again.
    await check_replay(leo.client, handle.id, "rejudged")


async def test_judging_again_is_bounded(
    leo: LeoClient, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    markers = tmp_path / "slow"
    slow = await add_agent(db_pool, metadata={"seconds": 0.5, "marker_dir": str(markers)})
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    handle = await leo.start_handoff(
        HandoffType.LEAD_TO_PLAN, sd.id, options=HandoffOptions(extra_sub_agents=[slow])
    )
    await bump_version_on_each_run(db_pool, sd.id, markers, times=MAX_REJUDGES + 1)

    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "VERSION_CONFLICT"
    assert runs(markers) == MAX_REJUDGES + 1
    assert await audit_trail(db_pool, sd.id) == [("failed", "VERSION_CONFLICT")] * (
        MAX_REJUDGES + 1
    )
