"""`leo doctor`: is this deployment ready? A thin command over `leo.services.doctor`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import typer
from rich.markup import escape

from leo.cli.common import ExitCode, JsonFlag, settings
from leo.cli.render import print_json, stdout
from leo.dev_stack import StackError, open_database, running_temporal_address
from leo.infra.settings import redact_url

commands = typer.Typer()


@commands.command()
def doctor(as_json: JsonFlag = False) -> None:
    """Check that this deployment is ready, and say how to fix what is not.

    Temporal reachable (with the TLS/auth in use); the namespace exists and LEO's search
    attributes have the right types; a worker polls LEO_TASK_QUEUE; PostgreSQL reachable and
    the migrations current (none pending, none edited); the role's rights (owner or superuser
    is a warning); the sub-agent catalogue's executors resolvable here (python callables
    import, commands on PATH). Without TEMPORAL_ADDRESS / LEO_DATABASE_URL it checks the
    embedded stack of `leo dev`. Shows LEO_SCHEMA_MODE; in adopt mode the PostgreSQL checks are
    the adoption current, their schema's fingerprint unchanged and LEO's actor still registered
    (docs/adoption.md).

    `--json` prints {"ok", "checks": [{"name", "ok", "level", "detail", "fix"}]}. Exit code 0
    when no error-level check failed (warnings allowed), 1 otherwise.
    """
    from db.pool import connect
    from leo.services.doctor import run_doctor

    configured = settings()
    if not configured.temporal_address:
        found = running_temporal_address(configured.data_dir)
        if found is not None:
            configured = configured.with_embedded_temporal(found)
    resources = contextlib.ExitStack()
    url: str | None = None
    failure: Exception | None = None
    try:
        url = resources.enter_context(open_database(configured))
    except StackError as exc:
        failure = exc

    async def with_database(work: Callable[..., Awaitable[Any]]) -> Any:
        if url is None:
            assert failure is not None
            raise failure
        conn = await connect(url)
        try:
            return await work(conn, redact_url(url))
        finally:
            with contextlib.suppress(Exception):
                await conn.close()

    with resources:
        report = asyncio.run(run_doctor(configured, with_database))
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        console = stdout()
        for check in report.checks:
            mark = (
                "[green]ok[/green]"
                if check.ok
                else ("[yellow]warning[/yellow]" if check.level == "warning" else "[red]FAIL[/red]")
            )
            console.print(f"{mark:<8} [bold]{check.name}[/bold]: {escape(check.detail)}")
            if not check.ok and check.fix:
                console.print(f"         fix: {escape(check.fix)}", soft_wrap=True)
        console.print(
            "[bold green]Ready.[/bold green]" if report.ok else "[bold red]Not ready.[/bold red]"
        )
    if not report.ok:
        raise typer.Exit(ExitCode.REJECTED)
