"""`leo handoff`: run one handoff for an SD and print its gates, score and outcome."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from leo.api import HandoffFailed, LeoClient
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
from leo.cli.render_runs import render_result
from leo.domain.handoff_messages import HandoffOptions, HandoffResult
from leo.domain.handoffs import HandoffType
from leo.infra.failures import validation_message

commands = typer.Typer()

HandoffArg = Annotated[
    HandoffType,
    typer.Argument(
        metavar="TYPE",
        help="LEAD-TO-PLAN, PLAN-TO-EXEC, EXEC-TO-PLAN, PLAN-TO-LEAD or LEAD-FINAL-APPROVAL.",
    ),
]


@commands.command()
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
    try:
        options = HandoffOptions(extra_sub_agents=extra_agent or [])
    except ValidationError as exc:
        raise CliError(
            "--extra-agent: " + validation_message(exc).removeprefix("invalid input: "),
            ExitCode.BAD_INPUT,
        ) from None

    async def work(leo: LeoClient) -> HandoffResult | dict[str, str | None]:
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
            print_json(outcome)
        else:
            stdout().print(f"Started {outcome['workflow_id']} (run {outcome['run_id']}).")
        return
    if as_json:
        print_json(outcome.model_dump(mode="json"))
    else:
        stdout().print(render_result(outcome, None))
    if not outcome.accepted:
        raise typer.Exit(ExitCode.REJECTED)
