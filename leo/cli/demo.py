"""`leo demo`: the hardening plan's own SD driven through SD-LIFECYCLE on a real stack.

The lifecycle runs the five handoffs as child workflows. The demo plays EXEC (it sends the
completion report) and, with --auto-approve, LEAD. Two command sub-agents from examples/agents
take a few seconds each, so their parallelism shows; progress comes from the workflows'
`status` and `progress` queries.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import asyncpg
import typer
import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from db.catalogue import upsert_command_sub_agent
from db.sds import create_sd, resolve_sd_id
from leo.api import HandoffFailed, LeoClient, LifecycleClient
from leo.cli.common import ExitCode, Shutdown, migrate_database, settings, shutdown_on_signals
from leo.cli.render import stderr, stdout
from leo.cli.render_runs import (
    print_demo_summary,
    render_progress,
    render_result,
    render_step,
    workflow_url,
)
from leo.dev_stack import Stack, start_stack
from leo.domain.handoff_messages import HandoffOptions, HandoffProgress, HandoffResult
from leo.domain.handoffs import HandoffType, Step, workflow_id_for
from leo.domain.lifecycle_messages import ExecReport, LifecycleStatus, StepRecord
from leo.domain.sd_spec import SdSpec
from leo.infra.settings import Settings, redact_url
from leo.runtime import open_runtime
from workflows.registry import HANDOFF_RUN, HANDOFF_WORKFLOWS
from workflows.sd_lifecycle import SdLifecycleWorkflow

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = PROJECT_ROOT / "examples"
DEMO_SD_FILE = EXAMPLES / "sd-leo-infra-hardening-001.yaml"
# code -> (name, script, the snapshot parts it reads: its input is only those).
DEMO_AGENTS = {
    "DEMO_ACCEPTANCE_REVIEW": (
        "Acceptance criteria reviewer (command)",
        "acceptance_review.py",
        ["stories"],
    ),
    "DEMO_PLAN_TRACEABILITY": (
        "Plan traceability checker (command)",
        "plan_traceability.py",
        ["sd", "prd"],
    ),
}

commands = typer.Typer()


@commands.command()
def demo(
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="Give LEAD's final approval on your behalf.")
    ] = False,
    keep_running: Annotated[
        bool,
        typer.Option(
            "--keep-running", help="Leave the stack and a worker up afterwards, until Ctrl-C."
        ),
    ] = False,
    agent_seconds: Annotated[
        float,
        typer.Option(
            "--agent-seconds", min=0.0, max=60.0, help="How long each example command agent works."
        ),
    ] = 3.0,
    sd_key: Annotated[
        str | None, typer.Option("--sd-key", help="Run on a copy of the plan's SD under this key.")
    ] = None,
    temporal_port: Annotated[int, typer.Option("--temporal-port", min=1, max=65535)] = 7233,
) -> None:
    """The main job: SD-LEO-INFRA-HARDENING-001 through SD-LIFECYCLE on the embedded stack.

    Starts (or reuses) PostgreSQL and the Temporal dev server, applies the migrations, runs a
    worker, creates the plan's SD from examples/, and drives it through all five handoffs with
    real parallel sub-agents. The demo reports EXEC's work itself; LEAD's approval comes from
    `leo approve <SD>` in another terminal, or from --auto-approve. Running it again on the
    completed SD changes nothing and prints the same summary.
    """
    configured = settings()
    with shutdown_on_signals():
        try:
            stack = start_stack(
                database_url=configured.database_url,
                temporal_address=configured.temporal_address,
                data_dir=configured.data_dir,
                temporal_port=temporal_port,
                namespace=configured.temporal_namespace,
            )
        except Shutdown:
            return
        try:
            migrate_database(stack.database_url)
            completed = asyncio.run(
                run_on_stack(
                    configured,
                    stack,
                    auto_approve=auto_approve,
                    keep_running=keep_running,
                    agent_seconds=agent_seconds,
                    sd_key=sd_key,
                )
            )
        except Shutdown:
            stderr().print("Stopping ...")
            completed = True
        finally:
            stack.stop()
    if not completed:
        raise typer.Exit(ExitCode.REJECTED)


async def run_on_stack(
    configured: Settings,
    stack: Stack,
    *,
    auto_approve: bool,
    keep_running: bool,
    agent_seconds: float,
    sd_key: str | None,
) -> bool:
    """Run a worker on the stack and the demo against it; True when the lifecycle completed."""
    resolved = configured.model_copy(update={"database_url": stack.database_url})
    if stack.temporal is not None:  # the embedded dev server: a plain connection
        resolved = resolved.with_embedded_temporal(stack.temporal_address)
    console = stdout()
    console.print(
        f"[bold]LEO demo[/bold]: Temporal {stack.temporal_address}, Web UI {stack.ui_url or 'n/a'}, "
        f"database {redact_url(stack.database_url)}"
    )
    async with open_runtime(resolved) as runtime, runtime.worker():
        # The demo's worker runs on this client: its handoffs start eagerly on it.
        leo = LeoClient(runtime.client, runtime.pool, resolved.task_queue, eager_start=True)
        outcome = await run_demo(
            leo,
            runtime.pool,
            console=console,
            ui_url=stack.ui_url,
            namespace=resolved.temporal_namespace,
            agent_seconds=agent_seconds,
            sd_key=sd_key,
            auto_approve=auto_approve,
        )
        print_demo_summary(console, outcome.lifecycle, outcome.results, stack.ui_url)
        if keep_running:
            console.print(
                "\nThe stack and a worker stay up: explore the Web UI, or re-run a handoff from "
                "the `temporal` CLI (docs/temporal-cli.md). Ctrl-C to stop."
            )
            await asyncio.Event().wait()
    return outcome.lifecycle.state == "completed"


# --- The demo itself ------------------------------------------------------------------------


def load_demo_spec(path: Path = DEMO_SD_FILE, sd_key: str | None = None) -> SdSpec:
    data = yaml.safe_load(path.read_text())
    if sd_key:
        data["sd_key"] = sd_key
    return SdSpec.model_validate(data)


async def register_demo_agents(pool: asyncpg.Pool, seconds: float) -> list[str]:
    """Upsert the example command agents into the catalogue, pointing at this checkout."""
    for code, (name, script, parts) in DEMO_AGENTS.items():
        await upsert_command_sub_agent(
            pool,
            code=code,
            name=name,
            timeout_seconds=max(30.0, seconds * 3),
            argv=["{python}", str(EXAMPLES / "agents" / script), "--seconds", f"{seconds:g}"],
            input_parts=parts,
        )
    return list(DEMO_AGENTS)


async def ensure_demo_sd(pool: asyncpg.Pool, spec: SdSpec) -> tuple[str, bool]:
    """The demo SD's canonical id, creating it if needed; True when it was created now."""
    async with pool.acquire() as conn:
        existing = await resolve_sd_id(conn, spec.sd_key)
        if existing is not None:
            return existing, False
        details = await create_sd(conn, spec)
    return details.sd.id, True


class DemoOutcome(BaseModel):
    lifecycle: LifecycleStatus
    results: list[HandoffResult]


def exec_report(spec: SdSpec) -> ExecReport:
    """What EXEC reports when the work is done: tests, commits, a retrospective."""
    return ExecReport(
        summary="Atomic transition functions, parallel sub-agent workflows and gate scoring shipped",
        test_results={
            key: "passing"
            for key, story in zip(spec.story_keys, spec.stories, strict=True)
            if story.e2e_test_path
        },
        commits=["c0ffee1 fault suite", "5eed2a1 docs"],
        retrospective={
            "quality_score": 85,
            "what_went_well": ["atomic transitions removed the partial-state class of bugs"],
            "what_to_improve": ["record sub-agent evidence earlier in EXEC"],
        },
    )


async def child_result(leo: LeoClient, record: StepRecord) -> HandoffResult | None:
    if record.workflow_id is None or record.run_id is None:
        return None
    handoff = HandoffType(record.step.value)
    handle = leo.client.get_workflow_handle_for(
        HANDOFF_RUN[handoff], record.workflow_id, run_id=record.run_id
    )
    try:
        return await leo.wait(handle)
    except HandoffFailed:
        return None


async def run_demo(
    leo: LeoClient,
    pool: asyncpg.Pool,
    *,
    console: Console,
    ui_url: str | None,
    namespace: str,
    agent_seconds: float = 3.0,
    sd_key: str | None = None,
    auto_approve: bool = False,
    poll_seconds: float = 0.25,
) -> DemoOutcome:
    """Drive the demo SD through SD-LIFECYCLE. EXEC's report is sent by the demo; LEAD's
    approval comes from `leo approve <SD>` in another terminal, or from the demo itself with
    `auto_approve`."""
    spec = load_demo_spec(sd_key=sd_key)
    agents = await register_demo_agents(pool, agent_seconds)
    sd_id, created = await ensure_demo_sd(pool, spec)
    console.print(
        f"[bold]{spec.sd_key}[/bold] ({spec.sd_type}): "
        + (
            f"created from {DEMO_SD_FILE.relative_to(PROJECT_ROOT)}"
            if created
            else "already exists; its lifecycle resumes where it stands (a completed one returns its summary)"
        )
    )
    lifecycle = LifecycleClient(leo)
    handle = await lifecycle.start(sd_id, options=HandoffOptions(extra_sub_agents=agents))
    if ui_url:
        console.print(
            f"Web UI: {ui_url}/namespaces/{namespace}/workflows/{quote(handle.id, safe='')}",
            style="cyan",
        )
    waiter = asyncio.create_task(lifecycle.wait(handle))
    shown = 0
    sent: set[str] = set()
    results: list[HandoffResult] = []

    async def show_new_steps(status: LifecycleStatus) -> None:
        nonlocal shown
        for record in status.steps[shown:]:
            result = (
                await child_result(leo, record)
                if record.outcome in ("accepted", "rejected")
                else None
            )
            if result is not None:
                results.append(result)
                console.print(render_result(result, workflow_url(ui_url, namespace, result)))
            else:
                console.print(render_step(record))
            console.print()
        shown = len(status.steps)

    with Live(
        Text("starting SD-LIFECYCLE ..."), console=console, refresh_per_second=8, transient=True
    ) as live:
        while not waiter.done():
            try:
                status = await handle.query(SdLifecycleWorkflow.status)
            except Exception:  # not started yet: the next poll will show it
                await asyncio.wait({waiter}, timeout=poll_seconds)
                continue
            await show_new_steps(status)
            if status.waiting_for == "exec_complete" and "exec" not in sent:
                sent.add("exec")
                await lifecycle.report_exec_complete(sd_id, exec_report(spec))
            elif status.waiting_for == "approval" and "approval" not in sent:
                sent.add("approval")
                if auto_approve:
                    await lifecycle.approve(
                        sd_id, approver="leo demo --auto-approve", reason="demo"
                    )
                else:
                    console.print(
                        f"[bold yellow]Waiting for LEAD's approval.[/bold yellow] In another terminal run:\n"
                        f"  bin/leo approve {spec.sd_key} --approver <you>"
                    )
            live.update(await progress_view(leo, status))
            await asyncio.wait({waiter}, timeout=poll_seconds)
    final = await waiter
    await show_new_steps(final)
    return DemoOutcome(lifecycle=final, results=results)


async def progress_view(leo: LeoClient, status: LifecycleStatus) -> Table | Text:
    step = status.current_step
    if status.waiting_for:
        return Text(f"SD-LIFECYCLE at {step}: waiting for {status.waiting_for}", style="yellow")
    if step is None or step in (Step.EXEC_WORK, Step.LEAD_APPROVAL) or status.sd_id is None:
        return Text(f"SD-LIFECYCLE: {status.state}")
    handoff = HandoffType(step.value)
    handle = leo.client.get_workflow_handle(workflow_id_for(handoff, status.sd_id))
    try:
        progress = await handle.query(
            HANDOFF_WORKFLOWS[handoff].progress, result_type=HandoffProgress
        )
    except Exception:  # the child is starting or already finished
        progress = None
    return render_progress(handoff, progress)
