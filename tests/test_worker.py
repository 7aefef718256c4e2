"""worker.py: project gate plugins load into the registry the worker evaluates."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from temporalio.client import Client

from leo.api import LeoClient
from leo.domain.handoffs import HandoffType
from leo.runtime import build_worker, load_gate_registry
from tests.support.factories import create_sd


def test_gate_plugins_add_project_gates_after_the_built_in_ones() -> None:
    registry = load_gate_registry(["tests.support.gate_plugin:register"])
    names = [g.name for g in registry.gates(HandoffType.LEAD_TO_PLAN)]
    assert names[-1] == "PROJECT_CHANGELOG" and "GATE_SD_TRANSITION_READINESS" in names


@pytest.mark.parametrize(
    "ref", ["tests.support.gate_plugin", "tests.support.gate_plugin:", ":register"]
)
def test_malformed_plugin_reference_is_refused(ref: str) -> None:
    with pytest.raises(ValueError, match="must be written 'module:function'"):
        load_gate_registry([ref])


async def test_a_project_gate_blocks_and_passes_real_handoffs(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    queue = f"leo-plugin-{uuid.uuid4().hex[:6]}"
    leo = LeoClient(client, db_pool, queue)
    without = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    with_log = await create_sd(
        db_pool,
        ready_for="LEAD-TO-PLAN",
        sd_type="infrastructure",
        metadata={"changelog": "added atomic handoffs"},
    )
    gates = load_gate_registry(["tests.support.gate_plugin:register"])
    async with build_worker(client, db_pool, task_queue=queue, gates=gates):
        rejected = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, without.id)
        accepted = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, with_log.id)
    assert not rejected.accepted and rejected.failed_gate == "PROJECT_CHANGELOG"
    assert rejected.issues == ("no changelog entry recorded",)
    assert accepted.accepted


async def test_worker_refuses_a_namespace_without_leo_search_attributes(client: Client) -> None:
    from google.protobuf.duration_pb2 import Duration
    from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest

    from leo.runtime import ConfigurationError, check_search_attributes

    await check_search_attributes(client, "default")  # the dev server registers them
    bare = f"bare-{uuid.uuid4().hex[:6]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=bare, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    with pytest.raises(ConfigurationError) as refused:
        await check_search_attributes(client, bare)
    assert "LeoSdId" in str(refused.value)
    assert (
        f"temporal operator search-attribute create --namespace {bare} --name LeoSdId --type Keyword"
        in str(refused.value)
    )
