"""A rolling upgrade with worker deployment versioning (issue 17 item 5): two worker versions side
by side on the dev server. A handoff started on the old version finishes on it; new ones go to
the new version once it is current; none fails. `leo worker` takes its version from
LEO_DEPLOYMENT_NAME and LEO_BUILD_ID (leo/runtime.py: deployment_config)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import SetWorkerDeploymentCurrentVersionRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.lifecycle import LifecycleActivities, ReleaseInput
from activities.sub_agents import RunSubAgentInput, SubAgentActivities
from leo.api import LeoClient, LifecycleClient
from leo.domain.handoff_messages import HandoffOptions
from leo.domain.handoffs import HandoffType
from leo.infra.settings import Settings
from leo.runtime import build_worker, deployment_config
from tests.support.factories import add_agent, create_sd, seed_accepted_handoff
from tests.support.workflows import start_handoff
from tests.workflows.test_sd_lifecycle import REPORT, lifecycle_sd, wait_until


async def make_current(client: Client, deployment: str, build_id: str) -> None:
    """`temporal worker deployment set-current-version`, once the version's worker has polled."""
    request = SetWorkerDeploymentCurrentVersionRequest(
        namespace=client.namespace, deployment_name=deployment, build_id=build_id
    )
    async with asyncio.timeout(30):
        while True:
            try:
                await client.workflow_service.set_worker_deployment_current_version(request)
            except RPCError:
                await asyncio.sleep(0.3)  # the version is not registered yet
            else:
                return


async def build_ids(handle: WorkflowHandle[Any, Any]) -> set[str]:
    """The build ids of the workers that completed the run's workflow tasks."""
    history = await handle.fetch_history()
    return {
        e.workflow_task_completed_event_attributes.deployment_version.build_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    }


def test_leo_worker_takes_its_version_from_the_settings() -> None:
    settings = Settings.from_env({"LEO_DEPLOYMENT_NAME": "leo-prod", "LEO_BUILD_ID": "2026.12.7"})
    config = deployment_config(settings)
    assert config is not None and config.use_worker_versioning
    assert (config.version.deployment_name, config.version.build_id) == ("leo-prod", "2026.12.7")
    assert config.default_versioning_behavior == VersioningBehavior.PINNED
    assert deployment_config(Settings.from_env({})) is None


async def test_two_worker_versions_side_by_side_none_fails(
    client: Client, db_pool: asyncpg.Pool
) -> None:
    queue = f"leo-versions-{uuid.uuid4().hex[:6]}"
    deployment = f"leo-{uuid.uuid4().hex[:6]}"
    old, new = (
        deployment_config(Settings(deployment_name=deployment, build_id=build))
        for build in ("v1", "v2")
    )
    slow = await add_agent(db_pool, metadata={"seconds": 4})
    first, second = await create_sd(db_pool), await create_sd(db_pool)
    waiting = await lifecycle_sd(
        db_pool, ready_for="EXEC-TO-PLAN", stories=[{"status": "in_progress"}]
    )
    await seed_accepted_handoff(db_pool, waiting.id, "PLAN-TO-EXEC")
    lifecycle = LifecycleClient(LeoClient(client, db_pool, queue))

    async with build_worker(client, db_pool, task_queue=queue, deployment_config=old):
        await make_current(client, deployment, "v1")
        chain = await lifecycle.start(waiting.id)
        await wait_until(lifecycle, waiting.id, "exec_complete")
        started_on_v1 = await start_handoff(
            client,
            queue,
            HandoffType.LEAD_TO_PLAN,
            first.id,
            options=HandoffOptions(extra_sub_agents=[slow]),
        )
        await asyncio.sleep(1)  # its slow agent is running on v1

        # The release: v2 starts beside v1 and becomes current while v1's handoff still runs.
        async with build_worker(client, db_pool, task_queue=queue, deployment_config=new):
            await make_current(client, deployment, "v2")
            started_on_v2 = await start_handoff(client, queue, HandoffType.LEAD_TO_PLAN, second.id)
            on_v2 = await started_on_v2.result()
            on_v1 = await started_on_v1.result()
            # The lifecycle, waiting for days, moves to v2 at its next task (AUTO_UPGRADE); its
            # next handoff runs there.
            await lifecycle.report_exec_complete(waiting.id, REPORT)
            await wait_until(lifecycle, waiting.id, "approval", timeout=60)
            child = client.get_workflow_handle(f"EXEC-TO-PLAN:{waiting.id}")
            await chain.cancel()

    assert on_v1.accepted and on_v2.accepted
    assert await build_ids(started_on_v1) == {"v1"}
    assert await build_ids(started_on_v2) == {"v2"}
    pinned = (await started_on_v1.describe()).raw_info.versioning_info
    assert pinned.behavior == VersioningBehavior.PINNED.value
    assert pinned.deployment_version.build_id == "v1"
    assert await build_ids(chain) == {"v1", "v2"}
    assert await build_ids(child) == {"v2"}


async def test_a_result_the_worker_cannot_decode_fails_that_handoff_not_the_lifecycle(
    client: Client, db_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review F8: results written by a worker whose models differ (a deploy in progress)."""
    broken = await add_agent(db_pool)
    real_agent, real_heartbeat = (
        SubAgentActivities.run_sub_agent,
        LifecycleActivities.heartbeat_sd_claim,
    )

    @activity.defn(name="run_sub_agent")
    async def agent_of_another_model(self: Any, raw: Any) -> dict[str, Any]:
        request = RunSubAgentInput.model_validate(raw)
        result = (await real_agent(self, request)).model_dump(mode="json")
        return {**result, "confidence": 999} if request.spec.code == broken else result

    @activity.defn(name="heartbeat_sd_claim")
    async def heartbeat_of_another_model(self: Any, raw: Any) -> dict[str, Any]:
        request = ReleaseInput.model_validate(raw)
        return {**(await real_heartbeat(self, request)).model_dump(), "success": "maybe"}

    # Only this worker's activities answer in the other model; the workflows decode with ours.
    monkeypatch.setattr(SubAgentActivities, "run_sub_agent", agent_of_another_model)
    monkeypatch.setattr(LifecycleActivities, "heartbeat_sd_claim", heartbeat_of_another_model)
    queue = f"leo-decode-{uuid.uuid4().hex[:6]}"
    worker = build_worker(client, db_pool, task_queue=queue)
    monkeypatch.undo()

    handoff_sd = await create_sd(db_pool)
    lifecycle_sd_ = await create_sd(db_pool)
    healthy_sd = await create_sd(db_pool)
    lifecycle = LifecycleClient(LeoClient(client, db_pool, queue))
    async with worker:
        failing = await start_handoff(
            client,
            queue,
            HandoffType.LEAD_TO_PLAN,
            handoff_sd.id,
            options=HandoffOptions(extra_sub_agents=[broken]),
        )
        chain = await lifecycle.start(
            lifecycle_sd_.id, session_id="session-decode", claim_heartbeat_seconds=0.5
        )
        # That handoff fails at once, saying what it could not read.
        async with asyncio.timeout(30):
            with pytest.raises(WorkflowFailureError) as failed:
                await failing.result()
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "INVALID_INPUT"
        assert "confidence" in cause.message

        # The lifecycle's undecodable heartbeat fails its task, not the lifecycle: it keeps
        # its state and its claim until a fixed worker is deployed.
        async with asyncio.timeout(30):
            while not any(
                e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
                for e in (await chain.fetch_history()).events
            ):
                await asyncio.sleep(0.3)
        assert (await chain.describe()).status == WorkflowExecutionStatus.RUNNING

        # Every other workflow on the worker goes on.
        healthy = await start_handoff(client, queue, HandoffType.LEAD_TO_PLAN, healthy_sd.id)
        assert (await healthy.result()).accepted
    holder = await db_pool.fetchval(
        "SELECT claiming_session_id FROM strategic_directives_v2 WHERE id = $1", lifecycle_sd_.id
    )
    assert holder == "session-decode"
    await chain.terminate("test over")
