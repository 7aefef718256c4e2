"""SD-LIFECYCLE: `leo lifecycle start|status|report|retry|reclaim`, `leo approve`, `leo reject`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from temporalio.client import RPCError, WorkflowUpdateFailedError

from leo.api import HandoffFailed, LeoClient, LifecycleClient, LifecycleConflict
from leo.cli.common import (
    CliError,
    ExitCode,
    JsonFlag,
    SdArg,
    refusal,
    warn_without_worker,
    with_leo,
)
from leo.cli.render import print_json, stdout
from leo.cli.render_runs import print_lifecycle_status
from leo.domain.lifecycle_messages import ExecReport, LifecycleStatus, MessageAck

lifecycle_app = typer.Typer(
    help="SD-LIFECYCLE: the five handoffs chained for one SD, with EXEC's report and LEAD's approval.",
    no_args_is_help=True,
)
# `leo approve` and `leo reject` are top-level commands.
commands = typer.Typer()


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

    async def work(leo: LeoClient) -> LifecycleStatus:
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
    print_lifecycle_status(status, as_json=as_json)
    if wait and status.state != "completed":
        raise typer.Exit(ExitCode.REJECTED)


@lifecycle_app.command("status")
def lifecycle_status(sd: SdArg, as_json: JsonFlag = False) -> None:
    """Where the SD's lifecycle is: its step, what it waits for, each step's outcome."""

    async def work(leo: LeoClient) -> LifecycleStatus:
        return await LifecycleClient(leo).status(sd)

    try:
        status = with_leo(work)
    except CliError:
        raise
    except Exception as exc:
        raise CliError(f"no lifecycle found for {sd}: {exc}", ExitCode.BAD_INPUT) from exc
    print_lifecycle_status(status, as_json=as_json)


def send(
    sd: str, message: Callable[[LifecycleClient], Awaitable[MessageAck]], as_json: bool
) -> None:
    """Send one update to the SD's running lifecycle and print its acknowledgement."""

    async def work(leo: LeoClient) -> MessageAck:
        return await message(LifecycleClient(leo))

    try:
        ack = with_leo(work)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        code = getattr(cause, "type", None)
        raise CliError(
            f"refused: {code + ': ' if code else ''}{getattr(cause, 'message', cause)}",
            ExitCode.BAD_INPUT,
        ) from exc
    except (RPCError, HandoffFailed) as exc:
        raise CliError(f"no running lifecycle for {sd}: {exc}", ExitCode.BAD_INPUT) from exc
    if as_json:
        print_json(ack.model_dump(mode="json"))
    else:
        stdout().print(ack.detail, markup=False)


Approver = Annotated[str, typer.Option("--approver", help="Who decides (a LEAD).")]


@commands.command()
def approve(
    sd: SdArg,
    approver: Approver = "lead",
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Approve an SD whose lifecycle waits for LEAD's final approval."""
    send(sd, lambda lc: lc.approve(sd, approver=approver, reason=reason), as_json)


@commands.command()
def reject(
    sd: SdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (required).")],
    approver: Approver = "lead",
    as_json: JsonFlag = False,
) -> None:
    """Reject an SD whose lifecycle waits for LEAD's final approval; the lifecycle ends."""
    send(sd, lambda lc: lc.reject(sd, approver=approver, reason=reason), as_json)


@lifecycle_app.command("retry")
def lifecycle_retry(
    sd: SdArg,
    reason: Annotated[str, typer.Option("--reason", help="What was fixed.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Re-run the handoff that was rejected, once its cause is fixed."""
    send(sd, lambda lc: lc.retry(sd, reason=reason), as_json)


@lifecycle_app.command("reclaim")
def lifecycle_reclaim(
    sd: SdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why it may claim the SD again.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Claim the SD again after the lifecycle lost its claim ("claim lost to ..." in its status);
    refused while the other session's claim is live."""
    send(sd, lambda lc: lc.reclaim(sd, reason=reason), as_json)


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
    try:
        report = ExecReport.model_validate(json.loads(file.read_text()))
    except (OSError, ValueError, ValidationError) as exc:
        raise CliError(f"invalid report file {file}: {exc}", ExitCode.BAD_INPUT) from exc
    send(sd, lambda lc: lc.report_exec_complete(sd, report), as_json)
