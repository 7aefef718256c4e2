"""The lifetime of a command agent's processes: they end when its run ends, for any reason.

Each agent runs in its own session (so its own process group), with a parent-death signal,
inside a per-run cgroup v2 where one is writable, and with two environment markers that its
whole process tree inherits: `LEO_AGENT_RUN` (the sub-agent idempotency key) and
`LEO_AGENT_WORKER` (the spawning worker's pid and start time). The run's end kills the group
and the cgroup; a worker that was killed outright leaves at most grandchildren, which the next
worker's start-up sweep kills; and before an agent starts, any live copy of the same handoff
attempt (same key) is killed first, so at most one copy runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from leo.sub_agents.reaping import (
    CAP_LAST_CAP,
    PR_CAPBSET_DROP,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    PRCTL,
    RUN_VAR,
    TMP_PREFIX,
    WORKER_VAR,
    cgroup_name,
    cgroup_root,
    kill_cgroup,
    kill_previous_copies,
    worker_identity,
)

T = TypeVar("T")
STDERR_TAIL_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024
# After the agent's own process exits, what is left in its pipes is read for at most this long.
DRAIN_SECONDS = 2.0


# --- one run --------------------------------------------------------------------------------


def _child_setup(worker_pid: int, cgroup_procs: str | None) -> None:  # pragma: no cover
    # Runs in the forked child before exec (after setsid): keep it to plain syscalls.
    if cgroup_procs is not None:
        try:  # best effort: without it, the process group and the sweep still hold
            fd = os.open(cgroup_procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        except OSError:
            pass
    if PRCTL is not None:
        PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        PRCTL(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        if os.geteuid() == 0:
            # Root with capabilities could read a non-dumpable worker's memory anyway: an
            # agent of a root worker runs as root without any capability.
            for cap in range(CAP_LAST_CAP + 1):
                PRCTL(PR_CAPBSET_DROP, cap, 0, 0, 0)
    if os.getppid() != worker_pid:
        os._exit(125)  # the worker died before the death signal was armed


def _running(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


async def process_exit(pid: int) -> None:
    """Return once the process has exited. asyncio's Process.wait() also waits until its pipes
    close, which a grandchild that inherited stdout can put off for as long as it lives."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # already exited and reaped
    except OSError:  # no pidfd (Linux < 5.3): poll
        while True:
            if not _running(pid):
                return
            await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not gone.done():
            gone.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await gone
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def _returncode(proc: asyncio.subprocess.Process) -> int:
    # Called after the exit: asyncio's child watcher sets the code as soon as it reaps it.
    deadline = time.monotonic() + 5.0
    while proc.returncode is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"agent process {proc.pid} exited but was not reaped")
        await asyncio.sleep(0.005)
    return proc.returncode


# Sweeps and cgroup removal are short, bounded blocking work. They get their own threads:
# the loop's default executor also runs sync Python agents, whose threads cannot be killed and
# may never come back, and must not be able to stall a command agent's start or cleanup.
_EXECUTOR = ThreadPoolExecutor(max_workers=4, thread_name_prefix="leo-agent-processes")


async def _off_loop(func: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_EXECUTOR, func, *args)


@dataclass
class AgentRun:
    returncode: int
    stdout: bytes
    stderr_tail: bytes
    stdout_overflow: bool


async def _read_capped(stream: asyncio.StreamReader, buf: bytearray, cap: int) -> bool:
    """Read into `buf` until EOF (False) or until more than `cap` bytes came (True)."""
    while chunk := await stream.read(READ_CHUNK):
        if len(buf) + len(chunk) > cap:
            buf.extend(chunk[: cap - len(buf)])
            return True
        buf.extend(chunk)
    return False


async def _read_tail(stream: asyncio.StreamReader, tail: bytearray, keep: int) -> None:
    while chunk := await stream.read(READ_CHUNK):
        tail.extend(chunk)
        if len(tail) > keep:
            del tail[:-keep]


async def _feed(stream: asyncio.StreamWriter, data: bytes) -> None:
    # An agent may ignore stdin or exit early: a broken pipe is its business.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stream.write(data)
        await stream.drain()
        stream.close()


class AgentProcess:
    """One run of a command agent. Use `async with`: leaving kills the whole tree."""

    def __init__(self, argv: list[str], env: dict[str, str], run_key: str) -> None:
        self.argv = argv
        self.run_key = run_key
        self.identity = worker_identity()
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{self.identity}-"))
        self.env = {**env, "TMPDIR": str(self.tmpdir), RUN_VAR: run_key, WORKER_VAR: self.identity}
        self.cgroup: Path | None = None
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> AgentProcess:
        spawn: asyncio.Future[asyncio.subprocess.Process] | None = None
        try:
            await _off_loop(kill_previous_copies, self.run_key)
            root = cgroup_root()
            if root is not None:
                self.cgroup = root / cgroup_name(self.run_key, self.identity)
                try:
                    self.cgroup.mkdir()
                except OSError:
                    self.cgroup = None
            procs = str(self.cgroup / "cgroup.procs") if self.cgroup is not None else None
            worker_pid = os.getpid()
            # The fork happens in the event loop's thread, which lives as long as the worker:
            # PR_SET_PDEATHSIG fires when the forking *thread* ends.
            spawn = asyncio.ensure_future(
                asyncio.create_subprocess_exec(
                    *self.argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env=self.env,
                    start_new_session=True,  # its own session and process group
                    preexec_fn=lambda: _child_setup(worker_pid, procs),
                )
            )
            # Shielded: asyncio's own clean-up of a start cancelled after the fork kills only
            # the child, then waits for its pipes, which a grandchild may hold for good.
            self.proc = await asyncio.shield(spawn)
        except asyncio.CancelledError:
            if spawn is not None and self.proc is None:
                with contextlib.suppress(Exception):
                    self.proc = await spawn
            await self.__aexit__(None, None, None)
            raise
        except BaseException:
            await _off_loop(self._cleanup)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.kill_tree()
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await asyncio.shield(process_exit(self.proc.pid))
            # Let asyncio's child watcher reap it first, then close our pipe ends even if a
            # process that escaped the kill still holds them.
            with contextlib.suppress(RuntimeError):
                await _returncode(self.proc)
            self.proc._transport.close()  # type: ignore[attr-defined]
        await _off_loop(self._cleanup)

    def kill_tree(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                (self.cgroup / "cgroup.kill").write_text("1")

    def _cleanup(self) -> None:
        if self.cgroup is not None:
            kill_cgroup(self.cgroup)
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    async def communicate(self, stdin: bytes, max_stdout: int) -> AgentRun:
        """Feed stdin, read stdout up to `max_stdout` bytes (then kill the tree) and a bounded
        stderr tail, until the agent's own process exits; then kill what it left behind."""
        proc = self.proc
        if proc is None or proc.stdin is None or proc.stdout is None or proc.stderr is None:
            raise RuntimeError("communicate() needs a started AgentProcess with pipes")
        stdout, stderr = bytearray(), bytearray()
        feed = asyncio.create_task(_feed(proc.stdin, stdin))
        out = asyncio.create_task(_read_capped(proc.stdout, stdout, max_stdout))
        err = asyncio.create_task(_read_tail(proc.stderr, stderr, STDERR_TAIL_BYTES))
        exited = asyncio.create_task(process_exit(proc.pid))
        try:
            await asyncio.wait({out, exited}, return_when=asyncio.FIRST_COMPLETED)
            if out.done() and out.result():
                self.kill_tree()  # over the cap: stop it now, read no more
            await exited
            # The run ends with the agent's own process: nothing it started outlives it.
            self.kill_tree()
            # Left in the pipes: bounded, since a process that escaped could hold them open.
            await asyncio.wait({out, err}, timeout=DRAIN_SECONDS)
            overflow = out.done() and out.result()
            returncode = await _returncode(proc)
            return AgentRun(returncode, bytes(stdout), bytes(stderr), overflow)
        finally:
            for task in (feed, out, err, exited):
                task.cancel()
            await asyncio.gather(feed, out, err, exited, return_exceptions=True)
