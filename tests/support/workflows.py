"""Helpers for the workflow tests: start a handoff workflow, replay (and record) histories."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Replayer

from leo.domain.handoff_messages import HandoffInput, HandoffResult
from leo.domain.handoffs import HandoffType, workflow_id_for
from leo.infra.failures import LEO_DATA_CONVERTER
from workflows.registry import HANDOFF_RUN, HANDOFF_WORKFLOWS
from workflows.sd_lifecycle import SdLifecycleWorkflow

# Recorded histories, replayed by tests/workflows/test_lifecycle_and_replay.py.
HISTORIES = Path(__file__).resolve().parent.parent / "workflows" / "histories"
ALL_WORKFLOWS = [*HANDOFF_WORKFLOWS.values(), SdLifecycleWorkflow]


async def start_handoff(
    client: Client, task_queue: str, handoff: HandoffType, sd_id: str, **fields: Any
) -> WorkflowHandle[Any, HandoffResult]:
    run = HANDOFF_RUN[handoff]
    return await client.start_workflow(
        run,
        HandoffInput(sd_id=sd_id, **fields),
        id=workflow_id_for(handoff, sd_id),
        task_queue=task_queue,
    )


async def check_replay(client: Client, workflow_id: str, name: str) -> None:
    """Replay a finished workflow's history against this code; with LEO_RECORD_HISTORIES set,
    also record it as histories/<name>.json."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=LEO_DATA_CONVERTER)
    await replayer.replay_workflow(history)
    if os.environ.get("LEO_RECORD_HISTORIES"):
        HISTORIES.mkdir(exist_ok=True)
        record = {"workflow_id": history.workflow_id, "history": history.to_json_dict()}
        (HISTORIES / f"{name}.json").write_text(json.dumps(record, indent=1))
