"""`leo status` and `leo audit`: where an SD stands, and every transition attempt on it."""

from __future__ import annotations

from typing import Annotated

import typer

from db.sd_history import get_audit_trail, get_sd_status
from leo.cli.common import CliError, ExitCode, JsonFlag, SdArg, run_with_db, settings
from leo.cli.render import print_json, render_audit, render_status, stdout

commands = typer.Typer()


@commands.command()
def status(
    sd: SdArg,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1000, help="How many recent handoffs to show.")
    ] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Show where an SD stands: status, phase, transition version, claim, latest handoffs."""
    result = run_with_db(settings(), lambda conn: get_sd_status(conn, sd, handoff_limit=limit))
    if result is None:
        raise CliError(f"SD not found: {sd}", ExitCode.BAD_INPUT)
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    render_status(stdout(), result)


@commands.command()
def audit(sd: SdArg, as_json: JsonFlag = False) -> None:
    """Show an SD's transition audit trail, oldest first; failed attempts with their error record.

    Each attempt of an atomic transition leaves one row: completed ones with the state before
    and after, failed ones (everything rolled back) with failed_step, error_code, error_message
    and recovery_action. Beside them, the edits of the SD's content (`leo sd update`): what
    changed, who changed it and when.
    """
    trail = run_with_db(settings(), lambda conn: get_audit_trail(conn, sd))
    if trail is None:
        raise CliError(f"SD not found: {sd}", ExitCode.BAD_INPUT)
    if as_json:
        print_json(trail.model_dump(mode="json"))
        return
    render_audit(stdout(), trail)
