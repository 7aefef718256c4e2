"""What every `leo` command shares: the app object and its error mapping, exit codes, argument
types, settings, signals, and the connections to PostgreSQL and Temporal.

Commands live in one module per group (`leo.cli.dev`, `db`, `sd`, `handoff`, `lifecycle`,
`inspect`, `demo`), which `leo.cli` adds to `app`; what they print comes from `leo.cli.render`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable, Iterator
from enum import IntEnum
from types import FrameType
from typing import Annotated, Any, NoReturn, TypeVar

import asyncpg
import typer
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from typer.core import TyperGroup

from db.migrate import MigrationError, MigrationReport, migrate
from db.pool import connect
from leo.api import ConnectionFailed, LeoClient
from leo.cli.render import stderr
from leo.dev_stack import StackError, open_database, running_temporal_address
from leo.domain.refusals import DOMAIN_ERROR_TYPES
from leo.infra.settings import (
    InvalidSetting,
    Settings,
    SettingsError,
    TemporalUnavailable,
    redact_url,
)
from leo.runtime import ConfigurationError

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


def one_line(text: str) -> str:
    return " ".join(text.split())


def fail(message: str, code: int) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.write(f"leo: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


class LeoGroup(TyperGroup):
    """Maps the failures commands expect to their exit code, without a traceback.

    Installed on the top-level group, so every subcommand, later ones included, gets it.
    """

    def invoke(self, ctx: Any) -> Any:  # a click Context, vendored by typer
        try:
            return super().invoke(ctx)
        except CliError as exc:
            fail(exc.message, exc.code)
        except (
            StackError,
            MigrationError,
            ConfigurationError,
            SettingsError,
            TemporalUnavailable,
        ) as exc:
            fail(one_line(str(exc)), ExitCode.ENVIRONMENT)
        except ConnectionError as exc:  # db.pool.DatabaseUnavailable names PostgreSQL itself
            fail(one_line(str(exc)), ExitCode.ENVIRONMENT)
        except InvalidSetting as exc:
            fail(one_line(str(exc)), ExitCode.BAD_INPUT)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            # Unexpected: keep exit code 1 for "rejected", and still say what happened.
            traceback.print_exc()
            fail(
                f"unexpected error: {type(exc).__name__}: {one_line(str(exc))}",
                ExitCode.ENVIRONMENT,
            )


app = typer.Typer(
    cls=LeoGroup,
    name="leo",
    help=(
        "Durable LEO handoffs: Temporal workflows over atomic PostgreSQL transitions.\n\n"
        "Configuration comes from the environment: LEO_DATABASE_URL and TEMPORAL_ADDRESS point "
        "at existing servers (when unset, the embedded ones under LEO_DATA_DIR are used, "
        "default .leo/), TEMPORAL_NAMESPACE, LEO_TASK_QUEUE. Temporal TLS, mTLS and API keys "
        "come from the same TEMPORAL_* variables and temporal.toml profiles (TEMPORAL_PROFILE, "
        "TEMPORAL_CONFIG_FILE) the `temporal` CLI reads; PostgreSQL TLS from the URL "
        "(sslmode=verify-full&sslrootcert=...). LEO_SCHEMA_MODE=adopt runs LEO beside an "
        "existing EHG_Engineer database (`leo db adopt`, docs/adoption.md). `leo doctor` checks "
        "it all.\n\n"
        "Exit codes: 0 ok, 1 handoff rejected (doctor: not ready), 2 bad input or SD not found, "
        "3 environment or infrastructure error."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
)

JsonFlag = Annotated[
    bool,
    typer.Option("--json", help="Print machine-readable JSON on stdout, and nothing else there."),
]
SdArg = Annotated[
    str, typer.Argument(metavar="SD", help="The SD's id or sd_key.", show_default=False)
]


def settings() -> Settings:
    # Read per invocation rather than through the cached accessor: in-process test runs change
    # the environment between invocations.
    return Settings.from_env()


# --- Signals: `leo dev` and `leo demo` stop what they started ---------------------------------


class Shutdown(BaseException):
    """Ctrl-C or SIGTERM reached the command; raised in the main thread wherever it is waiting."""


@contextlib.contextmanager
def shutdown_on_signals() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        # Later signals are ignored: stopping is bounded, and a second Ctrl-C must not leave a
        # half-stopped stack behind.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        raise Shutdown(signum)

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


# --- PostgreSQL: the helper every DB command uses ---------------------------------------------


async def on_connection(
    url: str,
    work: Callable[[asyncpg.Connection], Awaitable[T]],
    *,
    search_path: str | None = None,
) -> T:
    try:
        conn = await connect(
            url, search_path=search_path
        )  # bounded; DatabaseUnavailable names PostgreSQL and the URL
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = one_line(str(exc)) or type(exc).__name__
        raise CliError(
            f"{reason}, or unset it to use the embedded database", ExitCode.ENVIRONMENT
        ) from exc
    try:
        return await work(conn)
    except asyncpg.DataError as exc:
        # A value the database cannot take (text that is not UTF-8, ...): the input is bad.
        raise CliError(f"invalid argument: {one_line(str(exc))}", ExitCode.BAD_INPUT) from exc
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedFunctionError) as exc:
        raise CliError(
            f"the database at {redact_url(url)} has no LEO schema ({exc}); run `leo db migrate`",
            ExitCode.ENVIRONMENT,
        ) from exc
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise CliError(f"database error: {one_line(str(exc))}", ExitCode.ENVIRONMENT) from exc
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
        return asyncio.run(on_connection(url, work, search_path=settings.search_path))


def migrate_database(url: str) -> MigrationReport:
    """Apply the migrations and the SQL functions to the database at `url`."""
    return asyncio.run(on_connection(url, migrate))


# --- Temporal: the commands that start or message workflows -----------------------------------


def resolve_temporal(settings: Settings) -> Settings:
    """The settings as configured (TEMPORAL_ADDRESS or a profile's address, with its TLS and
    API key), or pointed at the dev server of a running `leo dev` (a plain connection)."""
    if settings.temporal_address:
        return settings
    found = running_temporal_address(settings.data_dir)
    if found is None:
        raise CliError(
            f"no Temporal server: TEMPORAL_ADDRESS is unset (and no profile sets an address) and "
            f"no `leo dev` runs on {settings.data_dir}; start `leo dev` in another terminal or "
            "set TEMPORAL_ADDRESS",
            ExitCode.ENVIRONMENT,
        )
    return settings.with_embedded_temporal(found)


def with_leo(work: Callable[[LeoClient], Awaitable[T]]) -> T:
    """Run `work` with a `LeoClient` on the configured (or `leo dev`'s) database and Temporal.

    A server that cannot be reached is named, with its address, as exit code 3.
    """
    configured = settings()

    async def run(url: str) -> T:
        resolved = resolve_temporal(configured).model_copy(update={"database_url": url})
        try:
            leo = await LeoClient.connect(resolved, step_timeout=15)
        except ConnectionFailed as exc:
            raise CliError(str(exc), ExitCode.ENVIRONMENT) from exc
        async with leo:
            return await work(leo)

    with open_database(configured) as url:
        return asyncio.run(run(url))


def refusal(exc: Exception) -> CliError:
    code = getattr(exc, "code", None)
    exit_code = ExitCode.BAD_INPUT if code in DOMAIN_ERROR_TYPES else ExitCode.ENVIRONMENT
    return CliError(f"{code or type(exc).__name__}: {exc}", exit_code)


async def warn_without_worker(leo: LeoClient) -> None:
    """A handoff waits forever when no worker polls its task queue: say so up front."""
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
        stderr().print(
            f"Note: no worker polls task queue {leo.task_queue!r}; the handoff waits until one "
            "does. Start one with `leo worker`.",
            markup=False,
        )
