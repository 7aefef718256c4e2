"""Issue 19: a handoff has the bare floor's shape, read from real histories on the dev server.

- The only activities scheduled are the agents.
- The first workflow task schedules all of them (none depends on another).
- The workflow task that sees the last agent's result also completes (or fails) the workflow.
- A handoff whose agents are all built-in schedules no activity and has one workflow task.
How many tasks lie between depends on how the server batches completions: not counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowFailureError

from leo.api import LeoClient
from leo.domain import search_attributes
from leo.domain.handoff_messages import HandoffOptions
from leo.domain.handoffs import HandoffType
from tests.support.factories import add_agent, create_sd
from workflows.steps import BARE_FLOOR_SHAPE

E = EventType
CLOSING = (E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED)


@dataclass
class Shape:
    """A history read as workflow tasks: which commands each completed task made."""

    scheduled: list[str]  # activity types, in order
    tasks: list[list[HistoryEvent]]  # per completed workflow task, the events its commands made
    last_agent_seen_by: int | None  # index of the task that started after the last agent ended
    closed_by: int | None  # index of the task whose commands closed the workflow
    patch_markers: list[str]


def read_shape(events: list[HistoryEvent]) -> Shape:
    tasks: list[list[HistoryEvent]] = []
    started: list[int] = []  # event index of each task's WorkflowTaskStarted
    current: list[HistoryEvent] | None = None
    last_agent_end = None
    for i, event in enumerate(events):
        if event.event_type == E.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            started.append(i)
        elif event.event_type == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            current = []
            tasks.append(current)
        elif event.event_type in (
            E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
            E.EVENT_TYPE_ACTIVITY_TASK_STARTED,
            E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
            E.EVENT_TYPE_ACTIVITY_TASK_FAILED,
            E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
        ):
            current = None  # not a command: the task's commands end here
            if event.event_type not in (
                E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
                E.EVENT_TYPE_ACTIVITY_TASK_STARTED,
            ):
                last_agent_end = i
        elif current is not None:
            current.append(event)
    seen_by = None
    if last_agent_end is not None:
        seen_by = next(n for n, s in enumerate(started) if s > last_agent_end)
    closed_by = next(
        (n for n, task in enumerate(tasks) if any(e.event_type in CLOSING for e in task)), None
    )
    return Shape(
        scheduled=[
            e.activity_task_scheduled_event_attributes.activity_type.name
            for e in events
            if e.event_type == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ],
        tasks=tasks,
        last_agent_seen_by=seen_by,
        closed_by=closed_by,
        patch_markers=[
            patch_id(e)
            for e in events
            if e.event_type == E.EVENT_TYPE_MARKER_RECORDED
            and e.marker_recorded_event_attributes.marker_name == "core_patch"
        ],
    )


def patch_id(event: HistoryEvent) -> str:
    details = event.marker_recorded_event_attributes.details
    return str(json.loads(details["patch-data"].payloads[0].data)["id"])


async def history_of(leo: LeoClient, workflow_id: str) -> list[HistoryEvent]:
    return list((await leo.client.get_workflow_handle(workflow_id).fetch_history()).events)


@pytest.mark.parametrize("verdict", ["PASS", "FAIL"])
async def test_a_handoff_has_the_bare_floors_shape(
    leo: LeoClient, db_pool: asyncpg.Pool, verdict: str
) -> None:
    agents = [await add_agent(db_pool, metadata={"seconds": 0.05 * n}) for n in range(4)]
    agents.append(await add_agent(db_pool, priority=90, metadata={"verdict": verdict}))
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    options = HandoffOptions(extra_sub_agents=agents)

    if verdict == "PASS":
        result = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id, options=options)
        assert result.accepted, result.issues
        workflow_id = result.workflow_id
    else:
        handle = await leo.start_handoff(HandoffType.LEAD_TO_PLAN, sd.id, options=options)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        workflow_id = handle.id
    shape = read_shape(await history_of(leo, workflow_id))

    # The agents are the only activities: snapshot, gates and commit are local activities and
    # the built-in rules (VALIDATION, RISK) ran in the snapshot step.
    assert shape.scheduled == ["run_sub_agent"] * len(agents)
    first = [e for e in shape.tasks[0] if e.event_type == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    assert len(first) == len(agents), "the first workflow task did not schedule every agent"
    assert shape.last_agent_seen_by is not None
    assert shape.closed_by == shape.last_agent_seen_by, (
        "the workflow task that saw the last agent's result did not close the workflow"
    )
    assert shape.patch_markers == [BARE_FLOOR_SHAPE]
    # Both or neither: the verdict is recorded with the results (accepted or rejected).
    status = await db_pool.fetchval("SELECT status FROM sd_phase_handoffs WHERE sd_id = $1", sd.id)
    assert status == ("accepted" if verdict == "PASS" else "rejected")


async def test_a_handoff_of_built_in_agents_only_is_one_workflow_task(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")

    result = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id)

    assert result.accepted, result.issues
    assert {a.code for a in result.sub_agents} >= {"VALIDATION", "RISK"}
    events = await history_of(leo, result.workflow_id)
    shape = read_shape(events)
    assert shape.scheduled == []
    assert len(shape.tasks) == 1
    assert shape.closed_by == 0
    completed = [e for e in events if e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]
    assert len(completed) == 1


async def test_a_starter_beside_the_worker_starts_the_handoff_eagerly_with_its_attributes(
    client: Client, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    # The session worker runs on this same client: the server hands it the first task.
    leo = LeoClient(client, db_pool, task_queue, eager_start=True)
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")

    handle = await leo.start_handoff(HandoffType.LEAD_TO_PLAN, sd.id)
    result = await leo.wait(handle)

    assert getattr(handle, "__temporal_eagerly_started") is True
    assert result.accepted, result.issues
    events = await history_of(leo, result.workflow_id)
    started = events[0].workflow_execution_started_event_attributes
    assert set(started.search_attributes.indexed_fields) == {
        search_attributes.SD_ID,
        search_attributes.HANDOFF_TYPE,
    }
    # SD_ID and HANDOFF_TYPE came with the start: one upsert of ours, at the end (the SDK adds
    # its own, TemporalChangeVersion, with the patch marker).
    upserts = [
        e.upsert_workflow_search_attributes_event_attributes.search_attributes
        for e in events
        if e.event_type == E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    ]
    ours = [u for u in upserts if "TemporalChangeVersion" not in u.indexed_fields]
    assert len(ours) == 1
    assert set(ours[0].indexed_fields) == {
        search_attributes.SD_TYPE,
        search_attributes.OUTCOME,
        search_attributes.SCORE,
    }
