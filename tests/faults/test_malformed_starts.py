"""Malformed starts and updates fail at once, non-retryably, naming the problem, and write
nothing: a start with no input or two, an input in another encoding than JSON, for every
workflow type, through the real `temporal` CLI (leo/infra/payloads.py).

Before: the run stayed Running with its workflow task retrying (`TypeError: run() missing 1
required positional argument`, `AttributeError: 'bytes' object has no attribute 'sd_id'`).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from leo.api import LeoClient, LifecycleClient
from leo.dev_stack import Stack
from leo.domain.handoffs import HandoffType
from tests.faults.test_bad_input import temporal_cli
from tests.support.db import snapshot
from tests.support.factories import create_sd

WORKFLOW_TYPES = [h.value for h in HandoffType] + ["SD-LIFECYCLE"]


def malformed(sd_id: str) -> dict[str, list[str]]:
    """Name -> the arguments after `temporal workflow start --type T`. The payloads name a real
    SD, so that "nothing is written" means something."""
    good = json.dumps({"sd_id": sd_id})
    return {
        "no input": [],
        "binary/plain": ["--input-meta", "encoding=binary/plain", "--input", good],
        "unknown encoding": ["--input-meta", "encoding=json/protobuf", "--input", good],
        "two inputs": ["--input", good, "--input", good],
    }


@dataclass
class Outcome:
    status: WorkflowExecutionStatus | None
    failure_type: str | None
    message: str | None
    activities: int
    task_failures: int
    seconds: float


async def outcome(client: Client, workflow_id: str, started: float) -> Outcome:
    handle = client.get_workflow_handle(workflow_id)
    while (status := (await handle.describe()).status) == WorkflowExecutionStatus.RUNNING:
        if time.monotonic() - started > 10:
            await handle.terminate("malformed-start test: still running")
            break
        await asyncio.sleep(0.2)
    seconds = time.monotonic() - started
    events = (await handle.fetch_history()).events
    failure = None
    if events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        failure = events[-1].workflow_execution_failed_event_attributes.failure
    return Outcome(
        status=status,
        failure_type=failure.application_failure_info.type if failure else None,
        message=failure.message if failure else None,
        activities=sum(
            e.event_type
            in (
                EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
                EventType.EVENT_TYPE_MARKER_RECORDED,
                EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
            )
            for e in events
        ),
        task_failures=sum(
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED for e in events
        ),
        seconds=seconds,
    )


@pytest.mark.parametrize("workflow_type", WORKFLOW_TYPES)
async def test_a_malformed_start_fails_at_once_naming_the_problem_and_writes_nothing(
    stack: Stack, client: Client, db_pool: asyncpg.Pool, task_queue: str, workflow_type: str
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    before = await snapshot(db_pool, sd.id)
    outcomes = {}
    for name, args in malformed(sd.id).items():
        workflow_id = f"{workflow_type}:{sd.id}-{uuid.uuid4().hex[:6]}"
        started = time.monotonic()
        code, out = await temporal_cli(
            stack,
            "workflow",
            "start",
            "--type",
            workflow_type,
            "--task-queue",
            task_queue,
            "--workflow-id",
            workflow_id,
            *args,
        )
        assert code == 0, out  # the CLI starts it; the worker must refuse it
        outcomes[name] = await outcome(client, workflow_id, started)

    for name, o in outcomes.items():
        assert o.status == WorkflowExecutionStatus.FAILED, (name, o)
        assert o.failure_type == "INVALID_INPUT", (name, o)
        assert (o.activities, o.task_failures) == (0, 0), (name, o)
        assert o.seconds < 5, (name, o)
    assert "encoding 'binary/plain'" in (outcomes["binary/plain"].message or "")
    assert "encoding 'json/protobuf'" in (outcomes["unknown encoding"].message or "")
    assert f"{workflow_type} takes exactly 1 JSON input" in (outcomes["no input"].message or "")
    assert "started with 0" in (outcomes["no input"].message or "")
    assert "started with 2" in (outcomes["two inputs"].message or "")
    assert await snapshot(db_pool, sd.id) == before


async def test_a_malformed_update_is_rejected_naming_the_problem_and_records_nothing(
    stack: Stack, leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    lifecycle = LifecycleClient(leo)
    sd = await create_sd(db_pool, ready_for="EXEC-TO-PLAN", sd_type="infrastructure")
    handle = await lifecycle.start(sd.id)
    try:
        async with asyncio.timeout(90):
            while (await lifecycle.status(sd.id)).waiting_for != "exec_complete":
                await asyncio.sleep(0.1)
        report = json.dumps({"summary": "done"})
        update = ["workflow", "update", "execute", "--workflow-id", handle.id]
        code, out = await temporal_cli(
            stack,
            *update,
            "--name",
            "report_exec_complete",
            "--input-meta",
            "encoding=binary/plain",
            "--input",
            report,
        )
        assert code != 0 and "encoding 'binary/plain'" in out, out
        code, out = await temporal_cli(stack, *update, "--name", "report_exec_complete")
        assert code != 0 and "missing 1 required positional argument" in out, out
        status = await lifecycle.status(sd.id)
        assert status.waiting_for == "exec_complete"
        assert not await db_pool.fetchval(
            "SELECT count(*) FROM sd_exec_reports WHERE sd_id = $1", sd.id
        )
    finally:
        await handle.cancel()
