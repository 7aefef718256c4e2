"""The `leo` commands that talk to Temporal: worker, handoff, lifecycle, approve, demo.

Registered on `leo.cli.app` when that module is imported. Each one ends through
`leo.cli.main` (flush + `os._exit`), which the Temporal SDK's exit crash requires.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from leo.cli import (
    CliError,
    ExitCode,
    JsonFlag,
    SdArg,
    _migrate,
    _on_connection,
    _print_json,
    _settings,
    _Shutdown,
    _shutdown_on_signals,
    _stderr,
    _stdout,
    app,
    redact_url,
)
from leo.dev_stack import open_database, running_temporal_address, start_stack
from leo.domain.handoffs import HandoffType
from leo.domain.refusals import DOMAIN_ERROR_TYPES
from leo.settings import Settings

T = TypeVar("T")
lifecycle_app = typer.Typer(
    help="SD-LIFECYCLE: the five handoffs chained for one SD, with EXEC's report and LEAD's approval.",
    no_args_is_help=True,
)
app.add_typer(lifecycle_app, name="lifecycle")


def temporal_address(settings: Settings) -> str:
    if settings.temporal_address:
        return settings.temporal_address
    found = running_temporal_address(settings.data_dir)
    if found is None:
        raise CliError(
            f"no Temporal server: TEMPORAL_ADDRESS is unset and no `leo dev` runs on "
            f"{settings.data_dir}; start `leo dev` in another terminal or set TEMPORAL_ADDRESS",
            ExitCode.ENVIRONMENT,
        )
    return found


@asynccontextmanager
async def leo_client(settings: Settings, database_url: str) -> AsyncIterator[Any]:
    from leo.api import LeoClient

    resolved = settings.model_copy(
        update={"database_url": database_url, "temporal_address": temporal_address(settings)}
    )
    import asyncpg

    from db.pool import create_pool
    from leo.client import connect_client

    try:
        client = await asyncio.wait_for(connect_client(resolved), timeout=15)
    except (OSError, RuntimeError, TimeoutError) as exc:
        raise CliError(
            f"cannot connect to Temporal at {resolved.temporal_address}: {exc}",
            ExitCode.ENVIRONMENT,
        ) from exc
    try:
        pool = await asyncio.wait_for(create_pool(database_url, min_size=1, max_size=4), 15)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise CliError(
            f"cannot connect to PostgreSQL at {redact_url(database_url)}: {exc}",
            ExitCode.ENVIRONMENT,
        ) from exc
    leo = LeoClient(client, pool, resolved.task_queue)
    try:
        yield leo
    finally:
        await leo.close()


def with_leo(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(leo_client)` against the configured (or `leo dev`'s) database and Temporal."""
    settings = _settings()

    async def run(url: str) -> T:
        async with leo_client(settings, url) as leo:
            return await work(leo)

    with open_database(settings) as url:
        return asyncio.run(run(url))


def refusal(exc: Exception) -> CliError:
    code = getattr(exc, "code", None)
    exit_code = ExitCode.BAD_INPUT if code in DOMAIN_ERROR_TYPES else ExitCode.ENVIRONMENT
    return CliError(f"{code or type(exc).__name__}: {exc}", exit_code)


async def warn_without_worker(leo: Any) -> None:
    """A handoff waits forever when no worker polls its task queue: say so up front."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    try:
        response = await leo.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=leo.client.namespace,
                task_queue=TaskQueue(name=leo.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
    except Exception:  # the check is advice; the handoff itself reports real failures
        return
    if not response.pollers:
        _stderr().print(
            f"Note: no worker polls task queue {leo.task_queue!r}; the handoff waits until one "
            "does. Start one with `leo worker`.",
            markup=False,
        )


# --- leo worker -------------------------------------------------------------------------------


@app.command()
def worker() -> None:
    """Run a worker: every handoff workflow, SD-LIFECYCLE and their activities.

    Polls LEO_TASK_QUEUE (default leo-handoffs) on TEMPORAL_ADDRESS, or on the dev server of a
    running `leo dev`; uses LEO_DATABASE_URL or the embedded PostgreSQL. Start as many as you
    like: they share the task queue. Stops gracefully on Ctrl-C or SIGTERM.
    """
    from leo.runtime import run_worker

    settings = _settings()
    with open_database(settings) as url:
        resolved = settings.model_copy(
            update={"database_url": url, "temporal_address": temporal_address(settings)}
        )
        _stderr().print(
            f"LEO worker: task queue {resolved.task_queue!r} on {resolved.temporal_address} "
            f"(namespace {resolved.temporal_namespace}), database {redact_url(url)}. "
            "Ctrl-C to stop.",
            markup=False,
        )
        asyncio.run(run_worker(resolved))
    _stderr().print("Worker stopped.")


# --- leo handoff ------------------------------------------------------------------------------

HandoffArg = Annotated[
    HandoffType,
    typer.Argument(
        metavar="TYPE",
        help="LEAD-TO-PLAN, PLAN-TO-EXEC, EXEC-TO-PLAN, PLAN-TO-LEAD or LEAD-FINAL-APPROVAL.",
    ),
]


@app.command()
def handoff(
    handoff_type: HandoffArg,
    sd: SdArg,
    session: Annotated[
        str | None, typer.Option("--session", help="The session id that holds the SD's claim.")
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Start it and print its ids; do not wait.")
    ] = False,
    extra_agent: Annotated[
        list[str] | None,
        typer.Option(
            "--extra-agent", help="Run this sub-agent too (repeatable).", show_default=False
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run one handoff for an SD and print its gates, score, threshold and outcome.

    Starting a handoff twice is safe: a running one is attached to, an accepted one returns
    its first result, a rejected one runs again. Exit code 0 accepted, 1 rejected, 2 refused
    (unknown SD, wrong phase, ...), 3 environment.
    """
    from leo.api import HandoffFailed
    from leo.demo import render_result
    from leo.domain.handoff_messages import HandoffOptions

    options = HandoffOptions(extra_sub_agents=extra_agent or [])

    async def work(leo: Any) -> Any:
        handle = await leo.start_handoff(handoff_type, sd, session_id=session, options=options)
        if no_wait:
            return {"workflow_id": handle.id, "run_id": handle.result_run_id}
        await warn_without_worker(leo)
        return await leo.wait(handle)

    try:
        outcome = with_leo(work)
    except HandoffFailed as exc:
        raise refusal(exc) from exc
    if isinstance(outcome, dict):
        if as_json:
            _print_json(outcome)
        else:
            _stdout().print(f"Started {outcome['workflow_id']} (run {outcome['run_id']}).")
        return
    if as_json:
        _print_json(outcome.model_dump(mode="json"))
    else:
        _stdout().print(render_result(outcome, None))
    if not outcome.accepted:
        raise typer.Exit(ExitCode.REJECTED)


# --- leo lifecycle / approve / reject ---------------------------------------------------------


def _print_status(status: Any, as_json: bool) -> None:
    if as_json:
        _print_json(status.model_dump(mode="json"))
        return
    console = _stdout()
    console.print(
        f"[bold]{status.sd_key}[/bold] lifecycle: {status.state}"
        + (f", waiting for {status.waiting_for}" if status.waiting_for else "")
        + (f" at {status.current_step}" if status.current_step else "")
        + (f" (session {status.session_id})" if status.session_id else "")
    )
    for record in status.steps:
        score = f" {record.normalized_score:.1f}" if record.normalized_score is not None else ""
        issues = f": {'; '.join(record.issues)}" if record.issues else ""
        console.print(f"  {record.step.value:<20} {record.outcome}{score}{issues}", markup=False)
    if status.last_rejection:
        console.print(f"  last rejection: {status.last_rejection}", markup=False)
    if status.claim and status.claim.startswith("claim lost"):
        console.print(
            f"  {status.claim}: no handoff starts until `leo lifecycle reclaim {status.sd_key}`",
            markup=False,
        )


@lifecycle_app.command("start")
def lifecycle_start(
    sd: SdArg,
    session: Annotated[
        str | None, typer.Option("--session", help="The session that claims the SD.")
    ] = None,
    max_retries: Annotated[
        int, typer.Option("--max-retries", min=0, help="Re-runs allowed per rejected handoff.")
    ] = 3,
    deadline_hours: Annotated[
        float | None,
        typer.Option("--deadline-hours", min=0.0, help="Overall deadline, waits included."),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the lifecycle to end.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Start the SD's lifecycle, which resumes from wherever the SD stands.

    One lifecycle per SD. Starting it again attaches to the running one (or returns a
    completed one's summary); another session's running lifecycle is refused.
    """
    from leo.api import HandoffFailed, LifecycleClient, LifecycleConflict

    async def work(leo: Any) -> Any:
        lifecycle = LifecycleClient(leo)
        handle = await lifecycle.start(
            sd,
            session_id=session,
            max_retries=max_retries,
            deadline_seconds=deadline_hours * 3600 if deadline_hours else None,
        )
        await warn_without_worker(leo)
        if wait:
            return await lifecycle.wait(handle)
        await asyncio.sleep(0.5)  # let it load the SD, so the status below says where it is
        return await lifecycle.status(sd)

    try:
        status = with_leo(work)
    except LifecycleConflict as exc:
        raise CliError(str(exc), ExitCode.BAD_INPUT) from exc
    except HandoffFailed as exc:
        raise refusal(exc) from exc
    _print_status(status, as_json)
    if wait and status.state != "completed":
        raise typer.Exit(ExitCode.REJECTED)


@lifecycle_app.command("status")
def lifecycle_status(sd: SdArg, as_json: JsonFlag = False) -> None:
    """Where the SD's lifecycle is: its step, what it waits for, each step's outcome."""
    from leo.api import LifecycleClient

    async def work(leo: Any) -> Any:
        return await LifecycleClient(leo).status(sd)

    try:
        status = with_leo(work)
    except CliError:
        raise
    except Exception as exc:
        raise CliError(f"no lifecycle found for {sd}: {exc}", ExitCode.BAD_INPUT) from exc
    _print_status(status, as_json)


def _send(sd: str, send: Callable[[Any], Awaitable[Any]], as_json: bool) -> None:
    from temporalio.client import RPCError, WorkflowUpdateFailedError

    from leo.api import HandoffFailed, LifecycleClient

    async def work(leo: Any) -> Any:
        return await send(LifecycleClient(leo))

    try:
        ack = with_leo(work)
    except WorkflowUpdateFailedError as exc:
        raise CliError(f"refused: {exc.cause}", ExitCode.BAD_INPUT) from exc
    except (RPCError, HandoffFailed) as exc:
        raise CliError(f"no running lifecycle for {sd}: {exc}", ExitCode.BAD_INPUT) from exc
    if as_json:
        _print_json(ack.model_dump(mode="json"))
    else:
        _stdout().print(ack.detail, markup=False)


Approver = Annotated[str, typer.Option("--approver", help="Who decides (a LEAD).")]


@app.command()
def approve(
    sd: SdArg,
    approver: Approver = "lead",
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Approve an SD whose lifecycle waits for LEAD's final approval."""
    _send(sd, lambda lc: lc.approve(sd, approver=approver, reason=reason), as_json)


@app.command()
def reject(
    sd: SdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (required).")],
    approver: Approver = "lead",
    as_json: JsonFlag = False,
) -> None:
    """Reject an SD whose lifecycle waits for LEAD's final approval; the lifecycle ends."""
    _send(sd, lambda lc: lc.reject(sd, approver=approver, reason=reason), as_json)


@lifecycle_app.command("retry")
def lifecycle_retry(
    sd: SdArg,
    reason: Annotated[str, typer.Option("--reason", help="What was fixed.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Re-run the handoff that was rejected, once its cause is fixed."""
    _send(sd, lambda lc: lc.retry(sd, reason=reason), as_json)


@lifecycle_app.command("reclaim")
def lifecycle_reclaim(
    sd: SdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why it may claim the SD again.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Claim the SD again after the lifecycle lost its claim ("claim lost to ..." in its status);
    refused while the other session's claim is live."""
    _send(sd, lambda lc: lc.reclaim(sd, reason=reason), as_json)


@lifecycle_app.command("report")
def lifecycle_report(
    sd: SdArg,
    file: Annotated[
        Path,
        typer.Argument(
            help="EXEC's report as JSON: summary, test_results, commits, retrospective."
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Report EXEC's work done (with its evidence), so the lifecycle runs EXEC-TO-PLAN."""
    from leo.domain.lifecycle_messages import ExecReport

    try:
        report = ExecReport.model_validate(json.loads(file.read_text()))
    except (OSError, ValueError, ValidationError) as exc:
        raise CliError(f"invalid report file {file}: {exc}", ExitCode.BAD_INPUT) from exc
    _send(sd, lambda lc: lc.report_exec_complete(sd, report), as_json)


# --- leo demo ---------------------------------------------------------------------------------


@app.command()
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
    settings = _settings()
    with _shutdown_on_signals():
        try:
            stack = start_stack(
                database_url=settings.database_url,
                temporal_address=settings.temporal_address,
                data_dir=settings.data_dir,
                temporal_port=temporal_port,
                namespace=settings.temporal_namespace,
            )
        except _Shutdown:
            return
        try:
            asyncio.run(_on_connection(stack.database_url, _migrate))
            completed = asyncio.run(
                _run_demo(
                    settings,
                    stack,
                    auto_approve=auto_approve,
                    keep_running=keep_running,
                    agent_seconds=agent_seconds,
                    sd_key=sd_key,
                )
            )
        except _Shutdown:
            _stderr().print("Stopping ...")
            completed = True
        finally:
            stack.stop()
    if not completed:
        raise typer.Exit(ExitCode.REJECTED)


async def _run_demo(
    settings: Settings,
    stack: Any,
    *,
    auto_approve: bool,
    keep_running: bool,
    agent_seconds: float,
    sd_key: str | None,
) -> bool:
    from leo.api import LeoClient
    from leo.demo import run_demo
    from leo.runtime import open_runtime

    resolved = settings.model_copy(
        update={"database_url": stack.database_url, "temporal_address": stack.temporal_address}
    )
    console = _stdout()
    console.print(
        f"[bold]LEO demo[/bold]: Temporal {stack.temporal_address}, Web UI {stack.ui_url or 'n/a'}, "
        f"database {redact_url(stack.database_url)}"
    )
    async with open_runtime(resolved) as runtime, runtime.worker():
        leo = LeoClient(runtime.client, runtime.pool, resolved.task_queue)
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
        _print_demo_summary(console, outcome, stack.ui_url)
        if keep_running:
            console.print(
                "\nThe stack and a worker stay up: explore the Web UI, or re-run a handoff from "
                "the `temporal` CLI (docs/temporal-cli.md). Ctrl-C to stop."
            )
            await asyncio.Event().wait()
    return bool(outcome.lifecycle.state == "completed")


def _print_demo_summary(console: Console, outcome: Any, ui_url: str | None) -> None:
    from rich.table import Table

    table = Table(title="Summary", show_lines=False)
    for column in ("handoff", "outcome", "score / threshold", "sub-agents", "audit id"):
        table.add_column(column)
    for result in outcome.results:
        score = f"{result.normalized_score:.1f}" if result.normalized_score is not None else "n/a"
        table.add_row(
            result.handoff_type.value,
            result.outcome,
            f"{score} / {result.threshold:g}",
            f"{sum(a.ran for a in result.sub_agents)} ran, {result.sub_agent_verdict.verdict.value}",
            result.audit_id or "-",
        )
    console.print(table)
    status = outcome.lifecycle
    console.print(
        f"SD-LIFECYCLE {status.state} for {status.sd_key}. "
        f"Audit trail: `leo audit {status.sd_key}`; history: "
        f"`temporal workflow list --query \"LeoSdId='{status.sd_id}'\"`",
        markup=False,
    )
    if ui_url:
        console.print(f"Web UI: {ui_url}/namespaces/default/workflows", markup=False)
    sys.stdout.flush()
