"""The composition root: `Settings` -> Temporal client, asyncpg pool, gate registry -> Worker.

The one factory every process uses to wire LEO together: `leo worker` (through worker.py),
the demo, the benchmarks and the test suite. asyncpg lives only here and in activity
instances, never in the workflow sandbox.
"""

from __future__ import annotations

import asyncio
import importlib
import signal
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import Interceptor, Worker, WorkerDeploymentConfig, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.handoff import HandoffActivities
from activities.lifecycle import LifecycleActivities
from activities.sub_agents import SubAgentActivities
from db.pool import create_pool
from leo.domain.budget import MAX_SUB_AGENTS
from leo.domain.search_attributes import SEARCH_ATTRIBUTES
from leo.gates.builtin import default_registry
from leo.gates.core import GateRegistry
from leo.infra.client import connect_client
from leo.infra.payloads import InputCheckInterceptor
from leo.infra.settings import Settings
from leo.infra.telemetry import flush_traces, metrics_runtime
from leo.sub_agents.accounts import AgentUserError
from leo.sub_agents.reaping import prepare_worker_process
from workflows.registry import HANDOFF_WORKFLOWS
from workflows.sd_lifecycle import AutoUpgradeSdLifecycleWorkflow, SdLifecycleWorkflow

# The sandbox of the workflows that keep it (SD-LIFECYCLE; the five handoff workflows opt out,
# workflows/steps.py: HANDOFF_SANDBOXED). Our own model and activity packages have no import-time
# side effects: share them with the sandbox instead of re-importing them for every workflow
# instance (profiled: that re-import was a fifth of the worker's event-loop time).
SHARED_MODULES_SANDBOX = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("db", "leo", "activities")
)
# A production worker's pool: the handoff steps and agents' result rows run concurrently.
WORKER_POOL_MIN, WORKER_POOL_MAX = 2, 20


class ConfigurationError(RuntimeError):
    """The deployment is not ready for LEO, phrased as what to do about it."""


def load_gate_registry(plugins: Sequence[str] = ()) -> GateRegistry:
    """Built-in gates plus each plugin's: a plugin is "module:function(registry)"."""
    registry = default_registry()
    for ref in plugins:
        module_name, _, attr = ref.partition(":")
        if not module_name or not attr:
            raise ValueError(f"gate plugin {ref!r} must be written 'module:function'")
        getattr(importlib.import_module(module_name), attr)(registry)
    return registry


def build_worker(
    client: Client,
    pool: asyncpg.Pool,
    *,
    task_queue: str,
    gates: GateRegistry | None = None,
    workflow_runner: WorkflowRunner | None = None,
    interceptors: Sequence[Interceptor] = (),
    **worker_options: object,
) -> Worker:
    """Every workflow LEO has and their activities, bound to `pool` and `gates`."""
    handoff = HandoffActivities(pool, gates or default_registry())
    sub_agents = SubAgentActivities(pool)
    lifecycle = LifecycleActivities(pool)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[
            *HANDOFF_WORKFLOWS.values(),
            # A versioned worker's lifecycle declares AUTO_UPGRADE (see deployment_config).
            AutoUpgradeSdLifecycleWorkflow
            if worker_options.get("deployment_config")
            else SdLifecycleWorkflow,
        ],
        workflow_runner=workflow_runner or SHARED_MODULES_SANDBOX,
        activities=[
            handoff.load_handoff_snapshot,
            handoff.prepare_handoff,
            handoff.commit_handoff,
            handoff.evaluate_handoff_gates,
            handoff.apply_handoff_decision,
            handoff.commit_handoff_decision,
            handoff.decide_and_commit_handoff,
            sub_agents.run_sub_agent,
            lifecycle.load_lifecycle_state,
            lifecycle.claim_sd,
            lifecycle.heartbeat_sd_claim,
            lifecycle.release_sd,
            lifecycle.record_exec_report,
            lifecycle.record_lead_decision,
        ],
        # Sync python sub-agents run in threads via asyncio.to_thread; nothing else blocks.
        activity_executor=ThreadPoolExecutor(max_workers=8),
        graceful_shutdown_timeout=timedelta(seconds=10),
        # A start with no input, or two, fails at once (leo/infra/payloads.py); callers may add more.
        interceptors=[InputCheckInterceptor(), *interceptors],
        **{
            # Every agent a handoff's first workflow task schedules starts eagerly on this
            # worker (the SDK's default reserves 3), not through the server's matching.
            "max_eager_activity_reservations_per_workflow_task": MAX_SUB_AGENTS,
            **worker_options,
        },  # type: ignore[arg-type]
    )


async def check_search_attributes(client: Client, namespace: str) -> None:
    """Refuse to start against a server that lacks LEO's search attributes: every handoff
    sets them, and a workflow task that cannot would retry forever instead of failing."""
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = [name for name in SEARCH_ATTRIBUTES if name not in response.custom_attributes]
    if missing:
        flags = " ".join(f"--name {name} --type {SEARCH_ATTRIBUTES[name]}" for name in missing)
        raise ConfigurationError(
            f"namespace {namespace!r} lacks LEO's search attributes {', '.join(missing)}; "
            f"register them once with: temporal operator search-attribute create "
            f"--namespace {namespace} {flags}"
        )


@dataclass(frozen=True)
class Runtime:
    """A connected client, pool and gate registry; `worker()` builds workers on them."""

    settings: Settings
    client: Client
    pool: asyncpg.Pool
    gates: GateRegistry

    def worker(self, task_queue: str | None = None, **worker_options: object) -> Worker:
        versioning = deployment_config(self.settings)
        if versioning is not None:
            worker_options.setdefault("deployment_config", versioning)
        return build_worker(
            self.client,
            self.pool,
            task_queue=task_queue or self.settings.task_queue,
            gates=self.gates,
            **worker_options,  # type: ignore[arg-type]
        )


def deployment_config(settings: Settings) -> WorkerDeploymentConfig | None:
    """The worker's deployment version from LEO_DEPLOYMENT_NAME and LEO_BUILD_ID (None without a
    build id: an unversioned worker). Handoffs default to PINNED (a run finishes on the build it
    started on); SD-LIFECYCLE declares AUTO_UPGRADE (its waits last days; its changes are
    patched). docs/deployment.md, "Rolling out a release"."""
    if settings.build_id is None:
        return None
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(
            deployment_name=settings.deployment_name, build_id=settings.build_id
        ),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.PINNED,
    )


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    client: Client | None = None,
    pool_min: int = WORKER_POOL_MIN,
    pool_max: int = WORKER_POOL_MAX,
) -> AsyncIterator[Runtime]:
    """Connect to Temporal (or use `client`), check its namespace has LEO's search attributes,
    open the pool and load the gate plugins; the pool closes on exit."""
    if settings.database_url is None:
        raise ConfigurationError(
            "LEO_DATABASE_URL is not set; `leo worker` and `leo dev` use the embedded stack"
        )
    gates = load_gate_registry(settings.gate_plugins)
    client = client or await connect_client(settings)
    await check_search_attributes(client, settings.temporal_namespace)
    pool = await create_pool(
        settings.database_url,
        min_size=pool_min,
        max_size=pool_max,
        search_path=settings.search_path,
    )
    try:
        yield Runtime(settings=settings, client=client, pool=pool, gates=gates)
    finally:
        await pool.close()


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run one worker until `stop` is set (or SIGINT/SIGTERM), then shut down gracefully."""
    try:  # the agents' user; non-dumpable; kill what dead workers' agents left behind
        prepare_worker_process(settings.agent_user)
    except AgentUserError as exc:
        raise ConfigurationError(str(exc)) from exc
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The worker's client carries the metrics endpoint, when one is configured.
    client = await connect_client(settings, runtime=metrics_runtime(settings.metrics_bind))
    try:
        async with open_runtime(settings, client=client) as runtime, runtime.worker():
            await stop.wait()
    finally:
        flush_traces()
