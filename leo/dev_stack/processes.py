"""What the embedded stack's supervisors share: errors, ports, pids and writable folders."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
from pathlib import Path


class StackError(RuntimeError):
    """A problem starting the embedded stack, phrased as what the user should do."""


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


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # Linux only: if `leo dev` is killed outright, the kernel stops the dev server too,
    # so no orphan keeps the port.
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
        lines = [line for line in lines if line]
        if lines:
            return lines[-1][:300]
    return "(empty)"
