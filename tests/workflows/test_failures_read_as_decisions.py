"""What a client in any language sees when a handoff is rejected or an update is refused: a
stable type code from our vocabulary, a plain message, no stack trace, typed details as JSON."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from leo.api import LeoClient, LifecycleClient
from leo.domain.handoffs import HandoffType, lifecycle_workflow_id
from leo.domain.refusals import FAILURE_TYPES
from tests.support.factories import create_sd, seed_accepted_handoff
from tests.workflows.test_sd_lifecycle import lifecycle_sd, wait_until


async def final_failure(client: Client, workflow_id: str) -> Failure:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    (event,) = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
    ]
    return event.workflow_execution_failed_event_attributes.failure


async def current_details(client: Client, workflow_id: str) -> str:
    metadata: Any = await client.get_workflow_handle(workflow_id).query(
        "__temporal_workflow_metadata"
    )
    return str(metadata.current_details)


async def test_a_rejected_handoff_fails_with_the_decision_first_and_no_stack_trace(
    leo: LeoClient, client: Client, db_pool: asyncpg.Pool
) -> None:
    sd = await create_sd(
        db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure", description=""
    )

    result = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id)

    assert not result.accepted and result.failed_gate
    failure = await final_failure(client, result.workflow_id)
    assert failure.stack_trace == ""
    assert failure.application_failure_info.type == "HandoffRejected"
    score = f"{result.normalized_score:.1f}" if result.normalized_score is not None else "n/a"
    assert failure.message.startswith(
        f"{result.failed_gate} failed: score {score} against threshold {result.threshold:g} "
        f"(infrastructure); issues: {result.issues[0]}"
    )
    assert failure.message.endswith(f"LEAD-TO-PLAN rejected for {sd.sd_key}")
    assert "Traceback" not in failure.message and "File " not in failure.message
    # The typed result stays available as JSON in the details.
    (payload,) = failure.application_failure_info.details.payloads
    assert payload.metadata["encoding"] == b"json/plain"
    details = json.loads(payload.data)
    assert details["outcome"] == "rejected" and details["failed_gate"] == result.failed_gate
    assert (await current_details(client, result.workflow_id)).startswith(
        f"**LEAD-TO-PLAN rejected** for {sd.sd_key}"
    )


async def test_refused_updates_carry_our_codes_and_plain_messages(
    leo: LeoClient, client: Client, db_pool: asyncpg.Pool
) -> None:
    lifecycle = LifecycleClient(leo)
    sd = await lifecycle_sd(db_pool, ready_for="EXEC-TO-PLAN", stories=[{"status": "in_progress"}])
    await seed_accepted_handoff(db_pool, sd.id, "PLAN-TO-EXEC", score=95)
    await lifecycle.start(sd.id)
    await wait_until(lifecycle, sd.id, "exec_complete")
    handle = client.get_workflow_handle(lifecycle_workflow_id(sd.id))

    refusals: dict[str, Any] = {}
    for name, arg in [
        ("approve", {"approver": "lead"}),  # out of turn
        ("retry", {"reason": "again"}),  # nothing to retry
        ("approve", {"approver": 5}),  # not the model's shape
        ("report_exec_complete", {"summary": ["not", "text"]}),
    ]:
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(name, arg)
        refusals[f"{name} {json.dumps(arg)}"] = refused.value.cause

    causes = list(refusals.values())
    assert [c.type for c in causes] == [
        "NOT_WAITING_FOR_APPROVAL",
        "NOT_WAITING_FOR_RETRY",
        "INVALID_INPUT",
        "INVALID_INPUT",
    ]
    assert causes[0].message.startswith("not waiting for an approval")
    assert causes[2].message.startswith("invalid input: approver: ")
    assert causes[3].message.startswith("invalid input: summary: ")
    for cause in causes:
        assert cause.type in FAILURE_TYPES
        for internal in ("ValueError", "ValidationError", "pydantic", "https://", "Traceback"):
            assert internal not in cause.message, (internal, cause.message)
        assert cause.failure is not None and cause.failure.stack_trace == ""


async def test_a_start_with_malformed_input_fails_as_invalid_input(
    client: Client, task_queue: str
) -> None:
    with pytest.raises(WorkflowFailureError) as failed:
        await client.execute_workflow(
            "LEAD-TO-PLAN",
            {"sd_id": 5},
            id=f"LEAD-TO-PLAN:SD-MALFORMED-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )

    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "INVALID_INPUT"
    assert cause.message == "invalid input: sd_id: Input should be a valid string"
    assert cause.failure is not None and cause.failure.stack_trace == ""
