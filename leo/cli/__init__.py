"""The `leo` command line: the local stack, migrations, strategic directives, handoffs, the SD
lifecycle, status, audit and the demo.

One module per command group, each with its own Typer app, added to the shared `app` here, in
the order `leo --help` lists them: `dev` (dev, worker), `inspect` (status, audit), `handoff`,
`lifecycle` (approve, reject, and the `lifecycle` group), `demo`, `doctor`, `codec`
(codec-server), `db` and `sd` (`sd_update` adds `leo sd update` to it). Shared pieces
are in `leo.cli.common`, everything printed in `leo.cli.render` and `leo.cli.render_runs`.

Data goes to stdout: readable tables, or with `--json` one JSON document and nothing else.
Errors go to stderr as a line starting with "leo: ". Exit codes are stable (`ExitCode`).
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from leo.cli import codec, db, demo, dev, doctor, handoff, inspect, lifecycle, sd, sd_update
from leo.cli.common import ExitCode, app

app.add_typer(dev.commands)
app.add_typer(inspect.commands)
app.add_typer(handoff.commands)
app.add_typer(lifecycle.commands)
app.add_typer(demo.commands)
app.add_typer(doctor.commands)
app.add_typer(codec.commands)
app.add_typer(db.db_app, name="db")
app.add_typer(sd.sd_app, name="sd")
app.add_typer(lifecycle.lifecycle_app, name="lifecycle")

__all__ = ["ExitCode", "app", "exit_process", "main", "sd_update"]


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
    docs/temporal-notes.md section 0 item 6). Nothing registered with `atexit` runs after this,
    so every resource must already be closed: commands release theirs in `with` blocks. Buffered
    trace spans are exported first.
    """
    telemetry = sys.modules.get("leo.infra.telemetry")  # loaded by any command that traces
    if telemetry is not None:
        telemetry.flush_traces()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
