"""Helpers shared by the fault tests: worker subprocesses, run markers, bounded waits."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from leo.dev_stack import TemporalDevServer

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@dataclass
class WorkerProcess:
    """`python worker.py` (or another command) in a subprocess, its output in a log file."""

    env: dict[str, str]
    log: Path
    argv: list[str] = field(default_factory=lambda: [sys.executable, "worker.py"])
    process: subprocess.Popen[bytes] | None = None
    started: int = 0

    def start(self) -> WorkerProcess:
        assert self.process is None or self.process.poll() is not None
        with self.log.open("ab") as out:
            out.write(f"\n=== start #{self.started + 1} at {time.time():.3f} ===\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.started += 1
        return self

    def kill(self) -> float:
        """SIGKILL, then reap; returns the wall-clock time of the kill."""
        assert self.process is not None
        at = time.time()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        return at

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM (a graceful shutdown), SIGKILL if that takes too long."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


def worker_env(database_url: str, temporal_address: str, task_queue: str) -> dict[str, str]:
    return {
        "LEO_DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": temporal_address,
        "LEO_TASK_QUEUE": task_queue,
        "PYTHONUNBUFFERED": "1",
    }


def marker_times(directory: Path) -> list[float]:
    """The wall-clock times at which `tests.support.agents:sleep_then_pass` started a run (one file
    per run), oldest first."""
    if not directory.exists():
        return []
    return sorted(p.stat().st_mtime for p in directory.iterdir())


async def wait_until(
    check: Callable[[], Awaitable[T]], *, timeout: float, interval: float = 0.1, what: str = ""
) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(interval)


async def row_exists(pool: asyncpg.Pool, sql: str, *args: Any) -> bool:
    return bool(await pool.fetchval(sql, *args))


async def start_dev_server(server: TemporalDevServer) -> TemporalDevServer:
    # start() blocks until the port opens; keep the event loop (and in-process workers) going.
    return await asyncio.to_thread(server.start, 60.0)


async def stop_dev_server(server: TemporalDevServer) -> None:
    await asyncio.to_thread(server.stop, 20.0)
