"""Helpers shared by the workflow tests."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowHandle

from leo.domain.handoff_messages import HandoffInput, HandoffResult
from leo.domain.handoffs import HandoffType, workflow_id_for
from workflows.registry import HANDOFF_RUN


async def add_agent(
    pool: asyncpg.Pool,
    *,
    kind: str = "python",
    ref: Any = "tests.agents:sleep_then_pass",
    priority: int = 50,
    depends_on: list[str] | None = None,
    timeout: float = 60,
    metadata: dict[str, Any] | None = None,
    prefix: str = "T",
) -> str:
    """A catalogue row with a unique code, so tests never share agents."""
    code = f"{prefix}_{uuid.uuid4().hex[:8].upper()}"
    await pool.execute(
        "INSERT INTO leo_sub_agents (code, name, priority, depends_on, timeout_seconds, "
        "executor_kind, executor_ref, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        code,
        f"Test agent {code}",
        priority,
        depends_on or [],
        timeout,
        kind,
        json.loads(json.dumps(ref)),
        metadata or {},
    )
    return code


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
