"""`leo dev` (the local stack) and `leo worker` (a worker on it, or on configured servers)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, NoReturn

import typer

from leo.cli.common import (
    CliError,
    ExitCode,
    Shutdown,
    migrate_database,
    resolve_temporal,
    settings,
    shutdown_on_signals,
)
from leo.cli.render import print_dev_summary, stderr
from leo.dev_stack import Stack, open_database, port_is_open, start_stack
from leo.infra.client import connect_options, describe_security
from leo.infra.settings import redact_url
from leo.infra.telemetry import parse_bind
from leo.runtime import run_worker

commands = typer.Typer()


@commands.command()
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
    configured = settings()
    with shutdown_on_signals():
        try:
            stack = start_stack(
                database_url=configured.database_url,
                temporal_address=configured.temporal_address,
                data_dir=configured.data_dir,
                temporal_port=temporal_port,
                ui_port=ui_port,
                namespace=configured.temporal_namespace,
                headless=headless,
            )
        except Shutdown:
            return
        if (
            stack.temporal is not None
            and stack.temporal.reused
            and stack.temporal.port != temporal_port
        ):
            stderr().print(
                f"Note: a dev server already runs on {stack.data_dir} at {stack.temporal.address}; "
                f"reusing it (--temporal-port {temporal_port} does not apply).",
                markup=False,
            )
        try:
            report = migrate_database(stack.database_url)
            print_dev_summary(stack, configured, report, as_json=as_json)
            wait_for_shutdown(stack)
        except Shutdown:
            stderr().print("Stopping the LEO dev stack ...")
        finally:
            stack.stop()
    stderr().print("Stopped.")


def wait_for_shutdown(stack: Stack) -> NoReturn:
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


@commands.command()
def worker(
    metrics_bind: Annotated[
        str | None,
        typer.Option(
            "--metrics-bind",
            metavar="HOST:PORT",
            show_default=False,
            help="Serve Prometheus metrics at http://HOST:PORT/metrics (or LEO_METRICS_BIND). "
            "Default: no metrics endpoint.",
        ),
    ] = None,
) -> None:
    """Run a worker: every handoff workflow, SD-LIFECYCLE and their activities.

    Polls LEO_TASK_QUEUE (default leo-handoffs) on TEMPORAL_ADDRESS, or on the dev server of a
    running `leo dev`; uses LEO_DATABASE_URL or the embedded PostgreSQL. Start as many as you
    like: they share the task queue. Stops gracefully on Ctrl-C or SIGTERM.

    Optional: --metrics-bind serves the SDK's and LEO's metrics; OTEL_EXPORTER_OTLP_ENDPOINT
    sends traces over OTLP; LEO_PAYLOAD_KEY encrypts payloads (see docs/observability.md);
    LEO_BUILD_ID (with LEO_DEPLOYMENT_NAME, default leo) makes it a worker deployment version
    for rolling upgrades (see docs/deployment.md); LEO_AGENT_USER (a root worker only) runs each
    command agent as its own uid of that user's /etc/subuid range (see docs/sub-agents.md).
    """
    configured = settings()
    if metrics_bind:
        configured = configured.model_copy(update={"metrics_bind": metrics_bind})
    if configured.metrics_bind:
        parse_bind(configured.metrics_bind, "--metrics-bind / LEO_METRICS_BIND")  # before any I/O
    with open_database(configured) as url:
        resolved = resolve_temporal(configured).model_copy(update={"database_url": url})
        security = describe_security(connect_options(resolved))
        extras = "".join(
            [
                f", metrics at http://{resolved.metrics_bind}/metrics"
                if resolved.metrics_bind
                else "",
                ", payloads encrypted" if resolved.payload_key else "",
                f", agents as {resolved.agent_user}" if resolved.agent_user else "",
                f", version {resolved.deployment_name}.{resolved.build_id}"
                if resolved.build_id
                else "",
            ]
        )
        stderr().print(
            f"LEO worker: task queue {resolved.task_queue!r} on {resolved.temporal_address} "
            f"(namespace {resolved.temporal_namespace}, {security}), "
            f"database {redact_url(url)} (schema mode {resolved.schema_mode}){extras}. "
            "Ctrl-C to stop.",
            markup=False,
        )
        asyncio.run(run_worker(resolved))
    stderr().print("Worker stopped.")
