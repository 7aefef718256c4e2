"""What a benchmark watches while it runs: CPU seconds and peak RSS per process group (and CPU
by kind of thread), and the activity failures Temporal retried behind a handoff's back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil


class ActivityFailures(logging.Handler):
    """Counts the activity failures this process's workers report ("Completing activity as
    failed"), by error, while installed. A failed attempt is retried by Temporal, so a handoff
    still succeeds, only later; these counts make such hidden retries visible. Installing it
    also keeps the SDK's tracebacks off the benchmark's output."""

    MARKER = "Completing activity as failed"

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if not record.getMessage().startswith(self.MARKER):
            return
        error = record.exc_info[1] if record.exc_info else None
        text = f"{type(error).__name__}: {error}" if error is not None else "unknown"
        # "CONCURRENT_LOCK: request_id preflight:1 is being used ..." -> its first words.
        self.counts[" ".join(text.split()[:4])[:80]] += 1

    def __enter__(self) -> ActivityFailures:
        logging.getLogger("temporalio").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("temporalio").removeHandler(self)


def thread_kind(pid: int, tid: int, names: dict[int, str] | None = None) -> str:
    """What an OS thread is: Python threads by their Python name (this process only), the
    Temporal core's threads by their OS name (tokio names its threads, Python does not)."""
    name = (names or {}).get(tid)
    if tid == pid or name == "MainThread":
        return "main thread (asyncio loop: activities, client, worker polling)"
    if name is not None:
        if name.startswith("temporal_workflow_"):
            return "workflow task threads (activations, sandbox)"
        return "other Python threads"
    try:
        comm = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
    except OSError:
        return "other"
    if comm.startswith("tokio"):
        return "Temporal core threads (Rust, tokio)"
    return f"other native threads ({comm})"


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    names: dict[int, str] = {}
    if pid == os.getpid():
        names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    out: dict[int, tuple[str, float]] = {}
    with contextlib.suppress(psutil.Error):
        for t in psutil.Process(pid).threads():
            out[t.id] = (thread_kind(pid, t.id, names), t.user_time + t.system_time)
    return out


class ProcessMonitor:
    """CPU seconds per process group, and peak RSS of the groups asked for, over a window.
    For the groups in `threads_of`, also CPU seconds by kind of thread.

    A group is a process and its descendants (PostgreSQL's backends), except for the groups
    in `threads_of`, which count the process alone: the benchmark process is the parent of
    the servers it started and of py-spy."""

    def __init__(
        self,
        groups: dict[str, int],
        rss_of: Sequence[str] = (),
        every: float = 0.1,
        threads_of: Sequence[str] = (),
    ):
        self.groups = groups
        self.rss_of = list(rss_of)
        self.threads_of = list(threads_of)
        self.every = every
        self.peak_rss: dict[str, int] = dict.fromkeys(self.rss_of, 0)
        self._start_cpu: dict[str, dict[int, float]] = {}
        self._start_threads: dict[str, dict[int, tuple[str, float]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._started = 0.0
        self.result: dict[str, Any] = {}

    @staticmethod
    def _members(pid: int) -> list[psutil.Process]:
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def _cpu(self, label: str, pid: int) -> dict[int, float]:
        out: dict[int, float] = {}
        members = self._members(pid)
        if label in self.threads_of:
            members = members[:1]
        for proc in members:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                out[proc.pid] = t.user + t.system
        return out

    def _sample_rss(self) -> None:
        for label in self.rss_of:
            pid = self.groups.get(label)
            if pid is None:
                continue
            with contextlib.suppress(psutil.Error):
                rss = psutil.Process(pid).memory_info().rss
                self.peak_rss[label] = max(self.peak_rss[label], rss)

    async def _loop(self) -> None:
        while True:
            self._sample_rss()
            await asyncio.sleep(self.every)

    async def __aenter__(self) -> ProcessMonitor:
        self._start_cpu = {label: self._cpu(label, pid) for label, pid in self.groups.items()}
        self._start_threads = {label: thread_cpu(self.groups[label]) for label in self.threads_of}
        self._started = time.perf_counter()
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self._started
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample_rss()
        cpu: dict[str, float] = {}
        for label, pid in self.groups.items():
            now = self._cpu(label, pid)
            before = self._start_cpu.get(label, {})
            # Processes that started during the window count from zero.
            cpu[label] = sum(v - before.get(p, 0.0) for p, v in now.items())
        threads: dict[str, dict[str, float]] = {}
        for label in self.threads_of:
            before_t = self._start_threads.get(label, {})
            by_kind: dict[str, float] = {}
            for tid, (kind, total) in thread_cpu(self.groups[label]).items():
                by_kind[kind] = by_kind.get(kind, 0.0) + total - before_t.get(tid, (kind, 0.0))[1]
            threads[label] = by_kind
        self.result = {
            "elapsed_s": elapsed,
            "thread_cpu_s": threads,
            "cpu_s": cpu,
            "cpu_pct_of_one_core": {k: 100 * v / elapsed for k, v in cpu.items()},
            "peak_rss_mib": {k: round(v / 2**20, 1) for k, v in self.peak_rss.items()},
        }
