"""The `leo` command line: the local stack, migrations, strategic directives, status and audit.

Data goes to stdout: readable tables, or with `--json` one JSON document and nothing else.
Errors go to stderr as a line starting with "leo: ". Exit codes are stable (`ExitCode`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from typer.core import TyperGroup

from db.migrate import MigrationError, MigrationReport
from leo.dev_stack import Stack, StackError, open_database, port_is_open, start_stack
from leo.runtime import ConfigurationError
from leo.settings import Settings

if TYPE_CHECKING:
    import asyncpg
    from pydantic import ValidationError

    from leo.repository import AuditTrail, SdDetails, SdSpec, SdStatus

T = TypeVar("T")


class ExitCode(IntEnum):
    OK = 0
    REJECTED = 1  # a handoff ran and was rejected by its gates
    BAD_INPUT = 2  # a bad file or argument, or an SD that does not exist
    ENVIRONMENT = 3  # the database, Temporal or the embedded stack cannot be used


class CliError(Exception):
    """An expected failure: printed as one "leo: ..." line, then the process exits with `code`."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(message: str, code: int) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.write(f"leo: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


class LeoGroup(TyperGroup):
    """Maps the failures commands expect to their exit code, without a traceback.

    Installed on the top-level group, so every subcommand, later ones included, gets it.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as exc:
            _fail(exc.message, exc.code)
        except (StackError, MigrationError, ConfigurationError) as exc:
            _fail(_one_line(str(exc)), ExitCode.ENVIRONMENT)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            # Unexpected: keep exit code 1 for "rejected", and still say what happened.
            traceback.print_exc()
            _fail(
                f"unexpected error: {type(exc).__name__}: {_one_line(str(exc))}",
                ExitCode.ENVIRONMENT,
            )


app = typer.Typer(
    cls=LeoGroup,
    name="leo",
    help=(
        "Durable LEO handoffs: Temporal workflows over atomic PostgreSQL transitions.\n\n"
        "Configuration comes from the environment: LEO_DATABASE_URL and TEMPORAL_ADDRESS point "
        "at existing servers (when unset, the embedded ones under LEO_DATA_DIR are used, "
        "default .leo/), TEMPORAL_NAMESPACE, LEO_TASK_QUEUE.\n\n"
        "Exit codes: 0 ok, 1 handoff rejected, 2 bad input or SD not found, "
        "3 environment or infrastructure error."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
sd_app = typer.Typer(
    help="Strategic directives: create one from a file, show one.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(sd_app, name="sd")

JsonFlag = Annotated[
    bool,
    typer.Option("--json", help="Print machine-readable JSON on stdout, and nothing else there."),
]
SdArg = Annotated[
    str, typer.Argument(metavar="SD", help="The SD's id or sd_key.", show_default=False)
]


def main() -> None:
    """The `leo` console script: runs the command, then leaves through `exit_process`.

    Every command, error paths included, ends that way, so commands that use a Temporal client
    need nothing special. Tests that run `app` in-process never reach this.
    """
    try:
        app()
    except SystemExit as exc:
        if isinstance(exc.code, str):
            sys.stderr.write(exc.code + "\n")
        exit_process(exc.code if isinstance(exc.code, int) else int(exc.code is not None))
    exit_process(ExitCode.OK)


def exit_process(code: int) -> NoReturn:
    """Flush stdout and stderr, then end the process with `os._exit(code)`.

    The Temporal SDK can crash the interpreter at exit after all work succeeded (sdk-python#300;
    temporal-notes section 0 item 6). Nothing registered with `atexit` runs after this, so every
    resource must already be closed: commands release theirs in `with` blocks.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _settings() -> Settings:
    # Read per invocation rather than through the cached accessor: in-process test runs change
    # the environment between invocations.
    return Settings.from_env()


def _stdout() -> Console:
    # Wide when piped too, so that ids and URLs in tables stay whole.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def _print_json(data: Any, *, indent: int | None = 2) -> None:
    sys.stdout.write(json.dumps(data, indent=indent, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def redact_url(url: str) -> str:
    """The URL with its password replaced, for printing."""
    with contextlib.suppress(ValueError):
        parts = urlsplit(url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
            return urlunsplit(parts._replace(netloc=netloc))
    return url


# --- The database helper every DB command uses ------------------------------------------------


async def _on_connection(url: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    import asyncpg

    from db.pool import connect

    try:
        conn = await asyncio.wait_for(connect(url), timeout=15)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = _one_line(str(exc)) or type(exc).__name__
        raise CliError(
            f"cannot connect to PostgreSQL at {redact_url(url)}: {reason}; "
            "check LEO_DATABASE_URL, or unset it to use the embedded database",
            ExitCode.ENVIRONMENT,
        ) from exc
    try:
        return await work(conn)
    except asyncpg.DataError as exc:
        # A value the database cannot take (text that is not UTF-8, ...): the input is bad.
        raise CliError(f"invalid argument: {_one_line(str(exc))}", ExitCode.BAD_INPUT) from exc
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedFunctionError) as exc:
        raise CliError(
            f"the database at {redact_url(url)} has no LEO schema ({exc}); run `leo db migrate`",
            ExitCode.ENVIRONMENT,
        ) from exc
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise CliError(f"database error: {_one_line(str(exc))}", ExitCode.ENVIRONMENT) from exc
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


def run_with_db(settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work` on one connection to the command's database, and return its result.

    That is LEO_DATABASE_URL, or the embedded PostgreSQL under the data directory: a running one
    is reused, one started here is stopped again (`leo.dev_stack.open_database`). Connection and
    schema problems become exit code 3.
    """
    with open_database(settings) as url:
        return asyncio.run(_on_connection(url, work))


async def _migrate(conn: asyncpg.Connection) -> MigrationReport:
    from db.migrate import migrate

    return await migrate(conn)


# --- leo dev ------------------------------------------------------------------------------------


class _Shutdown(BaseException):
    """Ctrl-C or SIGTERM reached `leo dev`; raised in the main thread wherever it is waiting."""


@contextlib.contextmanager
def _shutdown_on_signals() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        # Later signals are ignored: stopping is bounded, and a second Ctrl-C must not leave a
        # half-stopped stack behind.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        raise _Shutdown(signum)

    if threading.current_thread() is not threading.main_thread():
        # Signals reach only the main thread (an embedding caller, or a test, runs us elsewhere).
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@app.command()
def dev(
    temporal_port: Annotated[
        int,
        typer.Option(
            "--temporal-port", min=1, max=65535, help="Port of the Temporal dev server (gRPC)."
        ),
    ] = 7233,
    ui_port: Annotated[
        int | None,
        typer.Option(
            "--ui-port",
            min=1,
            max=65535,
            show_default=False,
            help="Port of the Temporal Web UI. Default: the Temporal port + 1000.",
        ),
    ] = None,
    headless: Annotated[bool, typer.Option("--headless", help="Run without the Web UI.")] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the addresses as one line of JSON on stdout, and nothing else."
        ),
    ] = False,
) -> None:
    """Run the local stack until Ctrl-C or SIGTERM: PostgreSQL and the Temporal dev server.

    Starts the embedded PostgreSQL unless LEO_DATABASE_URL is set and the Temporal dev server
    (SQLite, Web UI, LEO search attributes) unless TEMPORAL_ADDRESS is set, with their data
    under LEO_DATA_DIR (default .leo/), so it survives restarts. Servers already running on that
    folder are reused. Then applies the migrations and prints the Temporal address, the Web UI
    URL and the database URL. On Ctrl-C or SIGTERM it stops what it started.
    """
    settings = _settings()
    with _shutdown_on_signals():
        try:
            stack = start_stack(
                database_url=settings.database_url,
                temporal_address=settings.temporal_address,
                data_dir=settings.data_dir,
                temporal_port=temporal_port,
                ui_port=ui_port,
                namespace=settings.temporal_namespace,
                headless=headless,
            )
        except _Shutdown:
            return
        if (
            stack.temporal is not None
            and stack.temporal.reused
            and stack.temporal.port != temporal_port
        ):
            _stderr().print(
                f"Note: a dev server already runs on {stack.data_dir} at {stack.temporal.address}; "
                f"reusing it (--temporal-port {temporal_port} does not apply).",
                markup=False,
            )
        try:
            report = asyncio.run(_on_connection(stack.database_url, _migrate))
            _print_dev_summary(stack, settings, report, as_json=as_json)
            _wait_for_shutdown(stack)
        except _Shutdown:
            _stderr().print("Stopping the LEO dev stack ...")
        finally:
            stack.stop()
    _stderr().print("Stopped.")


def _wait_for_shutdown(stack: Stack) -> NoReturn:
    """Sleep until a signal arrives; fail if the Temporal dev server goes away meanwhile."""
    temporal = stack.temporal
    while True:
        time.sleep(0.5)
        if temporal is None:
            continue
        if temporal.process is not None:
            code = temporal.process.poll()
            if code is not None:
                raise CliError(
                    f"the Temporal dev server exited unexpectedly (code {code}); "
                    f"see {temporal.log_file}",
                    ExitCode.ENVIRONMENT,
                )
        elif not port_is_open(temporal.ip, temporal.port):
            raise CliError(
                f"the Temporal dev server at {temporal.address} went away (the `leo dev` that "
                "started it stopped); run `leo dev` again",
                ExitCode.ENVIRONMENT,
            )


def _origin(external: bool, reused: bool) -> str:
    if external:
        return "configured"
    return "reused" if reused else "started"


ORIGIN_NOTES = {
    "postgres": {
        "configured": "from LEO_DATABASE_URL",
        "reused": "embedded, already running",
        "started": "embedded, started here",
    },
    "temporal": {
        "configured": "from TEMPORAL_ADDRESS",
        "reused": "dev server, already running",
        "started": "dev server, started here",
    },
}


def _ui_text(stack: Stack) -> str:
    if stack.temporal is None:
        return "served by the Temporal server at TEMPORAL_ADDRESS"
    return stack.ui_url or "off (--headless)"


def _print_dev_summary(
    stack: Stack, settings: Settings, report: MigrationReport, *, as_json: bool
) -> None:
    postgres_origin = _origin(
        stack.postgres is None, bool(stack.postgres and stack.postgres.reused)
    )
    temporal_origin = _origin(
        stack.temporal is None, bool(stack.temporal and stack.temporal.reused)
    )
    if as_json:
        _print_json(
            {
                "temporal_address": stack.temporal_address,
                "temporal_namespace": settings.temporal_namespace,
                "ui_url": stack.ui_url,
                "database_url": redact_url(stack.database_url),
                "data_dir": str(stack.data_dir),
                "task_queue": settings.task_queue,
                "postgres": postgres_origin,
                "temporal": temporal_origin,
                "migrations_applied": report.applied,
            },
            indent=None,
        )
        return
    console = _stdout()
    console.print("[bold green]LEO dev stack is up[/bold green]")
    migrations = f"applied {', '.join(report.applied)}" if report.applied else "up to date"
    rows = [
        (
            "Temporal",
            stack.temporal_address,
            f"{ORIGIN_NOTES['temporal'][temporal_origin]}; namespace {settings.temporal_namespace}",
        ),
        ("Web UI", _ui_text(stack), ""),
        ("Database", redact_url(stack.database_url), ORIGIN_NOTES["postgres"][postgres_origin]),
        ("Data dir", str(stack.data_dir), ""),
        ("Task queue", settings.task_queue, ""),
        ("Migrations", migrations, ""),
    ]
    logs = []
    if stack.temporal is not None:
        logs.append(str(stack.temporal.log_file))
    if stack.postgres is not None:
        logs.append(str(stack.postgres.pgdata / "log"))
    if logs:
        rows.append(("Logs", ", ".join(logs), ""))
    for label, value, note in rows:
        # soft_wrap: URLs stay on one line, so they can be copied.
        console.print(
            f"  [bold]{label:<11}[/bold] {escape(value)}"
            + (f"  [dim]({escape(note)})[/dim]" if note else ""),
            soft_wrap=True,
        )
    exports = []
    if stack.temporal is not None:
        exports.append(f"export TEMPORAL_ADDRESS={shlex.quote(stack.temporal_address)}")
    if stack.postgres is not None:
        exports.append(f"export LEO_DATABASE_URL={shlex.quote(stack.database_url)}")
    if exports:
        console.print("\nTo use it from another shell:")
        for line in exports:
            console.print(f"  {escape(line)}", soft_wrap=True)
    console.print("\nPress Ctrl-C to stop.")
    sys.stdout.flush()


# --- leo db migrate -----------------------------------------------------------------------------


@db_app.command("migrate")
def db_migrate(as_json: JsonFlag = False) -> None:
    """Apply the schema migrations and the SQL functions.

    Targets LEO_DATABASE_URL, or, when it is unset, the embedded PostgreSQL under LEO_DATA_DIR
    (started for the run and stopped again, unless it was already running). Safe to repeat and to
    run concurrently; refuses to run when an applied migration file has been edited.
    """
    settings = _settings()
    with open_database(settings) as url:
        report = asyncio.run(_on_connection(url, _migrate))
        target = redact_url(url)
    if as_json:
        _print_json(
            {
                "database_url": target,
                "applied": report.applied,
                "functions_applied": report.functions_applied,
                "up_to_date": not report.changed,
            }
        )
        return
    console = _stdout()
    for name in report.applied:
        console.print(f"Applied {escape(name)}")
    if report.functions_applied:
        console.print("Applied the SQL functions (db/functions)")
    if not report.changed:
        console.print("Database is up to date.")
    console.print(f"[dim]{escape(target)}[/dim]", soft_wrap=True)


# --- leo sd create / show -----------------------------------------------------------------------

SD_FILE_EXAMPLE = """\
sd_key: SD-LEO-INFRA-HARDENING-001
title: Harden the LEO handoff infrastructure
sd_type: infrastructure          # feature, bugfix, database, security, ...
priority: high                   # critical, high, medium, low
description: ...
success_criteria: [Every handoff is atomic]
prd:
  title: Hardening PRD           # id defaults to PRD-<sd_key>
  functional_requirements: [Atomic transitions]
stories:
  - title: Atomic EXEC-TO-PLAN   # story_key defaults to <sd_key>:US-001, ...
    acceptance_criteria: [All steps commit or none do]
"""


@sd_app.command(
    "create",
    epilog=f"Example (YAML):\n\n```yaml\n{SD_FILE_EXAMPLE}```",
)
def sd_create(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="A JSON (.json) or YAML (.yaml, .yml) file describing one SD.",
            show_default=False,
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Create an SD with its PRD and user stories from a JSON or YAML file.

    The file is validated first (unknown or misspelt fields are errors), and everything is
    written in one transaction: an invalid file or a taken key writes nothing (exit code 2).
    The SD starts as draft / LEAD_APPROVAL.
    """
    spec = load_sd_spec(file)
    details = run_with_db(_settings(), lambda conn: _create_sd(conn, spec))
    if as_json:
        _print_json(details.model_dump(mode="json"))
        return
    console = _stdout()
    stories = len(details.stories)
    console.print(
        f"Created [bold]{escape(details.sd.sd_key)}[/bold]"
        + (f" (id {escape(details.sd.id)})" if details.sd.id != details.sd.sd_key else "")
        + f" with {'a PRD' if details.prd else 'no PRD'} and {stories} "
        + ("story" if stories == 1 else "stories")
        + "."
    )
    _render_sd(console, details)


async def _create_sd(conn: asyncpg.Connection, spec: SdSpec) -> SdDetails:
    from leo.repository import SdWriteError, create_sd

    try:
        return await create_sd(conn, spec)
    except SdWriteError as exc:
        raise CliError(str(exc), ExitCode.BAD_INPUT) from exc


def load_sd_spec(path: Path) -> SdSpec:
    """Read and validate an SD file; a `CliError` (exit code 2) names what is wrong."""
    import yaml
    from pydantic import ValidationError

    from leo.repository import SdSpec

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"{path} is not a UTF-8 text file", ExitCode.BAD_INPUT) from exc
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", ExitCode.BAD_INPUT) from exc
    data: object
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CliError(f"{path} is not valid JSON: {exc}", ExitCode.BAD_INPUT) from exc
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CliError(
                f"{path} is not valid YAML: {_yaml_problem(exc)}", ExitCode.BAD_INPUT
            ) from exc
    if not isinstance(data, dict):
        held = "nothing" if data is None else f"a {type(data).__name__}"
        raise CliError(
            f"{path} must hold one SD as a mapping of fields (sd_key, title, ...); it holds {held}",
            ExitCode.BAD_INPUT,
        )
    try:
        return SdSpec.model_validate(data)
    except ValidationError as exc:
        raise CliError(_validation_message(path, exc), ExitCode.BAD_INPUT) from exc


def _yaml_problem(exc: Exception) -> str:
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return _one_line(str(exc))


def _validation_message(path: Path, exc: ValidationError) -> str:
    errors = exc.errors()
    lines = [
        f"invalid SD file {path} ({len(errors)} {'problem' if len(errors) == 1 else 'problems'}):"
    ]
    for error in errors:
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
        ).lstrip(".")
        message = str(error["msg"]).removeprefix("Value error, ")
        value = error.get("input")
        got = ""
        if error["type"] != "missing" and isinstance(value, str | int | float | bool):
            shown = repr(value)
            got = f" (got {shown[:60]}{'...' if len(shown) > 60 else ''})"
        lines.append(f"  {where or 'file'}: {message}{got}")
    return "\n".join(lines)


@sd_app.command("show")
def sd_show(sd: SdArg, as_json: JsonFlag = False) -> None:
    """Show an SD: its fields, its PRD and its user stories."""
    from leo.repository import get_sd_details

    details = run_with_db(_settings(), lambda conn: get_sd_details(conn, sd))
    if details is None:
        raise CliError(f"SD not found: {sd}", ExitCode.BAD_INPUT)
    if as_json:
        _print_json(details.model_dump(mode="json"))
        return
    _render_sd(_stdout(), details)


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _fields(rows: list[tuple[str, str]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, escape(value))
    return grid


def _bullets(items: list[Any]) -> str:
    return "\n".join(f"- {item if isinstance(item, str) else json.dumps(item)}" for item in items)


def _render_sd(console: Console, details: SdDetails) -> None:
    sd = details.sd
    console.print(f"\n[bold]{escape(sd.sd_key)}[/bold]  {escape(sd.title)}")
    rows = []
    if sd.id != sd.sd_key:
        rows.append(("id", sd.id))
    rows += [
        ("type", sd.sd_type),
        ("status / phase", f"{sd.status} / {sd.current_phase}"),
        ("priority", sd.priority),
        ("version", str(sd.transition_version)),
        ("progress", f"{sd.progress_percentage}%"),
        ("claimed by", sd.claiming_session_id or "-"),
    ]
    optional = [
        ("category", sd.category),
        ("intensity", sd.intensity_level),
        ("application", sd.target_application),
        ("description", sd.description),
        ("scope", sd.scope),
        ("rationale", sd.rationale),
        ("success criteria", _bullets(sd.success_criteria)),
        ("success metrics", _bullets(sd.success_metrics)),
    ]
    rows += [(label, value) for label, value in optional if value]
    rows += [("created", _when(sd.created_at)), ("updated", _when(sd.updated_at))]
    console.print(_fields(rows))

    prd = details.prd
    if prd is None:
        console.print("\nNo PRD yet.")
    else:
        prd_rows = [
            ("title", prd.title),
            ("status / phase", f"{prd.status} / {prd.phase}"),
            ("progress", f"{prd.progress}%"),
        ]
        if prd.executive_summary:
            prd_rows.append(("summary", prd.executive_summary))
        if prd.functional_requirements:
            prd_rows.append(("requirements", _bullets(prd.functional_requirements)))
        if prd.test_scenarios:
            prd_rows.append(("test scenarios", _bullets(prd.test_scenarios)))
        console.print(Panel(_fields(prd_rows), title=f"PRD {escape(prd.id)}", title_align="left"))

    if not details.stories:
        console.print("No user stories.")
        return
    table = Table(title=f"User stories ({len(details.stories)})", title_justify="left")
    table.add_column("Key", no_wrap=True)
    for column in ("Title", "Status", "Validation", "E2E test"):
        table.add_column(column, overflow="fold")
    for story in details.stories:
        table.add_row(
            escape(story.story_key),
            escape(story.title),
            story.status,
            story.validation_status,
            story.e2e_test_status
            + (f" ({escape(story.e2e_test_path)})" if story.e2e_test_path else ""),
        )
    console.print(table)


# --- leo status / audit -------------------------------------------------------------------------


@app.command()
def status(
    sd: SdArg,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1000, help="How many recent handoffs to show.")
    ] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Show where an SD stands: status, phase, transition version, claim, latest handoffs."""
    from leo.repository import get_sd_status

    result = run_with_db(_settings(), lambda conn: get_sd_status(conn, sd, handoff_limit=limit))
    if result is None:
        raise CliError(f"SD not found: {sd}", ExitCode.BAD_INPUT)
    if as_json:
        _print_json(result.model_dump(mode="json"))
        return
    _render_status(_stdout(), result)


def _render_status(console: Console, st: SdStatus) -> None:
    console.print(f"[bold]{escape(st.sd_key)}[/bold]  {escape(st.title)}")
    claim = "none"
    if st.claim is not None:
        c = st.claim
        claim = (
            f"{c.session_id} ({c.computed_status}, heartbeat {c.heartbeat_age_seconds} s ago"
            + (f", track {c.track}" if c.track else "")
            + ")"
        )
    rows = []
    if st.sd_id != st.sd_key:
        rows.append(("id", st.sd_id))
    rows += [
        ("type", st.sd_type),
        ("status", st.status),
        ("phase", st.current_phase),
        ("version", str(st.transition_version)),
        ("progress", f"{st.progress_percentage}%"),
        ("working on", "yes" if st.is_working_on else "no"),
        ("claim", claim),
    ]
    console.print(_fields(rows))
    if not st.handoffs:
        console.print("\nNo handoffs yet.")
        return
    table = Table(title="Latest handoffs (newest first)", title_justify="left")
    for column in ("When", "Handoff", "From -> To", "Status", "Score", "Request id"):
        table.add_column(column, overflow="fold")
    for h in st.handoffs:
        score = "-" if h.validation_score is None else f"{h.validation_score:g}"
        outcome = h.status + (f": {h.rejection_reason}" if h.rejection_reason else "")
        table.add_row(
            _when(h.created_at),
            h.handoff_type,
            f"{h.from_phase} -> {h.to_phase}",
            escape(outcome),
            score,
            escape(h.request_id),
        )
    console.print(table)


@app.command()
def audit(sd: SdArg, as_json: JsonFlag = False) -> None:
    """Show an SD's transition audit trail, oldest first; failed attempts with their error record.

    Each attempt of an atomic transition leaves one row: completed ones with the state before
    and after, failed ones (everything rolled back) with failed_step, error_code, error_message
    and recovery_action.
    """
    from leo.repository import get_audit_trail

    trail = run_with_db(_settings(), lambda conn: get_audit_trail(conn, sd))
    if trail is None:
        raise CliError(f"SD not found: {sd}", ExitCode.BAD_INPUT)
    if as_json:
        _print_json(trail.model_dump(mode="json"))
        return
    _render_audit(_stdout(), trail)


ERROR_RECORD_FIELDS = (
    "failed_step",
    "error_code",
    "error_message",
    "error_detail",
    "recovery_action",
)


def _render_audit(console: Console, trail: AuditTrail) -> None:
    failed = [e for e in trail.entries if e.status == "failed"]
    console.print(
        f"[bold]Audit trail of {escape(trail.sd_key)}[/bold]: {len(trail.entries)} "
        f"{'attempt' if len(trail.entries) == 1 else 'attempts'}, {len(failed)} failed"
    )
    if not trail.entries:
        return
    table = Table()
    table.add_column("#", justify="right")
    table.add_column("Started", no_wrap=True)
    table.add_column("Transition", no_wrap=True)
    table.add_column("Status")
    table.add_column("SD phase", overflow="fold")
    table.add_column("Version")
    table.add_column("Audit id", no_wrap=True)
    table.add_column("Request id", overflow="fold")
    for n, entry in enumerate(trail.entries, start=1):
        post = entry.post_state or {}
        pre = entry.pre_state
        phase = (
            f"{pre.get('sd_phase', '?')} -> {post['sd_phase']}"
            if "sd_phase" in post
            else str(pre.get("sd_phase", "?"))
        )
        version = (
            f"{pre.get('sd_version', '?')} -> {post['sd_version']}"
            if "sd_version" in post
            else str(pre.get("sd_version", "?"))
        )
        style = "red" if entry.status == "failed" else None
        table.add_row(
            str(n),
            _when(entry.started_at),
            entry.transition_type,
            entry.status,
            phase,
            version,
            str(entry.id),
            escape(entry.request_id),
            style=style,
        )
    console.print(table)
    for n, entry in enumerate(trail.entries, start=1):
        if entry.status != "failed":
            continue
        details = entry.error_details or {}
        rows = [(name, str(details[name])) for name in ERROR_RECORD_FIELDS if details.get(name)]
        console.print(
            Panel(
                _fields(rows),
                title=f"Failed attempt #{n}: {entry.transition_type}, audit {entry.id}",
                title_align="left",
                border_style="red",
            )
        )


# The commands that talk to Temporal (worker, handoff, lifecycle, approve, demo) register
# themselves on `app`; imported last because they use the helpers above.
from leo import cli_handoffs  # noqa: E402, F401
