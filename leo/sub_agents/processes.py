"""The lifetime of a command agent's processes: they end when its run ends, for any reason.

Each agent runs under its own launcher (leo/sub_agents/launcher.py): a child subreaper with a
parent-death signal, in its own session, inside a per-run cgroup v2 where one is writable. The
launcher kills and reaps the agent's whole tree when the agent exits or when the worker sends it
SIGTERM (always through a pidfd). Three environment markers are inherited by the tree:
`LEO_AGENT_RUN` (the sub-agent idempotency key), `LEO_AGENT_WORKER` (the spawning worker's pid
and start time) and `LEO_AGENT_COPY` (this copy's own id). The run's end also kills its cgroup
and its copy's marked processes; a worker that was killed outright leaves at most grandchildren,
which the next worker's start-up sweep kills; and before an agent starts, any live copy of the
same handoff attempt (same key) is killed first, so at most one copy runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from leo.sub_agents import accounts, launcher
from leo.sub_agents.reaping import (
    CAP_LAST_CAP,
    COPY_VAR,
    RUN_VAR,
    TMP_PREFIX,
    WORKER_VAR,
    cgroup_name,
    cgroup_root,
    kill_cgroup,
    kill_copy,
    kill_previous_copies,
    kill_uid,
    worker_identity,
)

T = TypeVar("T")
STDERR_TAIL_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024
# After the agent's own process exits, what is left in its pipes is read for at most this long.
DRAIN_SECONDS = 2.0


# --- one run --------------------------------------------------------------------------------

LAUNCHER = str(Path(launcher.__file__).resolve())
# How long the launcher gets to kill the run's tree after SIGTERM before it is killed itself.
STOP_SECONDS = 6.0


async def pidfd_exit(fd: int) -> None:
    """Return once the process behind the pidfd has exited. asyncio's Process.wait() also waits
    until its pipes close, which a process that escaped could put off for as long as it lives."""
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
    """One run of a command agent, under its own launcher (leo/sub_agents/launcher.py). Use
    `async with`: leaving ends the whole tree."""

    def __init__(self, argv: list[str], env: dict[str, str], run_key: str) -> None:
        self.argv = argv
        self.run_key = run_key
        self.copy = uuid.uuid4().hex  # this copy only: never reused by a later attempt
        self.identity = worker_identity()
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{self.identity}-"))
        self.env = {
            **env,
            "TMPDIR": str(self.tmpdir),
            RUN_VAR: run_key,
            WORKER_VAR: self.identity,
            COPY_VAR: self.copy,
        }
        self.cgroup: Path | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.pidfd: int | None = None
        self.account = accounts.configured()
        self.uid: accounts.UidLease | None = None

    def _switch_user(self) -> None:
        # LEO_AGENT_USER: the run's uid (its own, when the account has a range), and a private
        # HOME (= TMPDIR) that belongs to it.
        if self.account is None:
            return
        self.uid = accounts.lease(self.account, self.run_key)
        os.chown(self.tmpdir, self.uid.uid, self.account.gid)
        self.env["HOME"] = str(self.tmpdir)

    def _launcher_argv(self) -> list[str]:
        config: dict[str, Any] = {
            "worker": os.getpid(),
            "cgroup_procs": str(self.cgroup / "cgroup.procs") if self.cgroup else None,
            "cap_last_cap": CAP_LAST_CAP,
        }
        if self.account is not None and self.uid is not None:
            config |= {"uid": self.uid.uid, "gid": self.account.gid, "home": str(self.tmpdir)}
            # kill(-1) as the run's uid ends its whole tree, only when no other run shares it.
            config["own_uid"] = self.account.per_run
        return [sys.executable, "-I", "-S", LAUNCHER, json.dumps(config), *self.argv]

    async def __aenter__(self) -> AgentProcess:
        spawn: asyncio.Future[asyncio.subprocess.Process] | None = None
        try:
            await _off_loop(kill_previous_copies, self.run_key)
            await _off_loop(self._switch_user)
            root = cgroup_root()
            if root is not None:
                self.cgroup = root / cgroup_name(self.run_key, self.identity, self.copy)
                try:
                    self.cgroup.mkdir()
                except OSError:
                    self.cgroup = None
            # The fork happens in the event loop's thread, which lives as long as the worker:
            # the launcher's PR_SET_PDEATHSIG fires when the forking *thread* ends.
            spawn = asyncio.ensure_future(
                asyncio.create_subprocess_exec(
                    *self._launcher_argv(),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env=self.env,
                    start_new_session=True,  # its own session and process group
                )
            )
            # Shielded: asyncio's own clean-up of a start cancelled after the fork kills only
            # the child, then waits for its pipes, which a grandchild may hold for good.
            self.proc = await asyncio.shield(spawn)
            self._open_pidfd()
        except asyncio.CancelledError:
            if spawn is not None and self.proc is None:
                with contextlib.suppress(Exception):
                    self.proc = await spawn
                    self._open_pidfd()
            await self.__aexit__(None, None, None)
            raise
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    def _open_pidfd(self) -> None:
        # Right after the spawn, long before the launcher (a Python start-up) can have exited
        # and been reaped: the pidfd is the launcher's, and every signal goes through it.
        assert self.proc is not None
        self.pidfd = os.pidfd_open(self.proc.pid)

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self.proc is not None and self.pidfd is not None:
                await asyncio.shield(self._stop())
                # Let asyncio's child watcher reap it first, then close our pipe ends even if
                # a process that escaped the kill still holds them.
                with contextlib.suppress(RuntimeError):
                    await _returncode(self.proc)
                self.proc._transport.close()  # type: ignore[attr-defined]
        finally:
            await asyncio.shield(_off_loop(self._cleanup))

    def _signal(self, sig: int) -> None:
        if self.pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, sig)

    def kill_tree(self) -> None:
        """Ask the launcher to kill the run's tree (it exits once that is done)."""
        self._signal(signal.SIGTERM)

    async def _stop(self) -> None:
        assert self.pidfd is not None
        self.kill_tree()
        try:
            await asyncio.wait_for(pidfd_exit(self.pidfd), STOP_SECONDS)
        except TimeoutError:
            self._signal(signal.SIGKILL)
            await pidfd_exit(self.pidfd)

    def _cleanup(self) -> None:
        # What may outlive a launcher that was killed outright: its cgroup, and the processes
        # that still carry this copy's marker.
        if self.cgroup is not None:
            kill_cgroup(self.cgroup)
        kill_copy(self.copy)
        if self.uid is not None and self.account is not None and self.account.per_run:
            kill_uid(self.uid.uid)  # every process of the run's own uid is the run's
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        if self.uid is not None:
            self.uid.release()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

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
        assert self.pidfd is not None
        exited = asyncio.create_task(pidfd_exit(self.pidfd))
        try:
            await asyncio.wait({out, exited}, return_when=asyncio.FIRST_COMPLETED)
            if out.done() and out.result():
                self.kill_tree()  # over the cap: stop it now, read no more
            # The launcher exits after the agent's own process, once it has killed what the
            # agent left: nothing the agent started outlives the run.
            await exited
            # Left in the pipes: bounded, since a process that escaped could hold them open.
            await asyncio.wait({out, err}, timeout=DRAIN_SECONDS)
            overflow = out.done() and out.result()
            returncode = await _returncode(proc)
            return AgentRun(returncode, bytes(stdout), bytes(stderr), overflow)
        finally:
            for task in (feed, out, err, exited):
                task.cancel()
            await asyncio.gather(feed, out, err, exited, return_exceptions=True)
