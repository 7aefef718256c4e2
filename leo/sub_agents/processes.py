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
import ctypes
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

RUN_VAR = "LEO_AGENT_RUN"
WORKER_VAR = "LEO_AGENT_WORKER"
TMP_PREFIX = "leo-agent-"
CGROUP_PARENT = "leo-agents"
STDERR_TAIL_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024
# After the agent's own process exits, what is left in its pipes is read for at most this long.
DRAIN_SECONDS = 2.0

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38


def _load_prctl() -> Callable[..., int] | None:
    # Loaded once in the worker: dlopen in a forked child (preexec_fn) could deadlock.
    if sys.platform != "linux":
        return None
    with contextlib.suppress(OSError, AttributeError):
        prctl: Callable[..., int] = ctypes.CDLL("libc.so.6", use_errno=True).prctl
        return prctl
    return None


_PRCTL = _load_prctl()


def _cap_last_cap() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return 40


CAP_LAST_CAP = _cap_last_cap()


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot: with the pid, a unique identity."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()[19]


def worker_identity() -> str:
    return f"{os.getpid()}-{_start_time(os.getpid()) or 0}"


def worker_alive(identity: str) -> bool:
    pid, _, started = identity.partition("-")
    if not pid.isdigit():
        return False
    return _start_time(int(pid)) == started


def make_non_dumpable() -> bool:
    """PR_SET_DUMPABLE 0: another process of the same user (an agent) can no longer read this
    process's /proc/<pid>/environ or memory. Agents get the default back at exec."""
    if _PRCTL is None:
        return False
    return bool(_PRCTL(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0)


# --- per-run cgroup v2 ----------------------------------------------------------------------


@cache
def cgroup_root() -> Path | None:
    """`<cgroup2 mount>/<this process's cgroup>/leo-agents`, when it can be created and written,
    else None (then the process group, the parent-death signal and the sweep still hold)."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        own = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    mount = next((m.split()[4] for m in mounts if " - cgroup2 " in m), None)
    path = next((line[3:] for line in own if line.startswith("0::")), None)
    if mount is None or path is None:
        return None
    root = Path(mount) / path.lstrip("/") / CGROUP_PARENT
    try:
        root.mkdir(exist_ok=True)
        probe = root / f"probe-{os.getpid()}"
        probe.mkdir(exist_ok=True)
        usable = (probe / "cgroup.kill").exists() and os.access(probe / "cgroup.procs", os.W_OK)
        probe.rmdir()
    except OSError:
        return None
    return root if usable else None


def _cgroup_key(run_key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", run_key)[:120]


def _cgroup_name(run_key: str, identity: str) -> str:
    return f"{identity}.{_cgroup_key(run_key)}"


def kill_cgroup(path: Path) -> None:
    """Kill every process in the cgroup, wait for it to empty (bounded), remove it."""
    with contextlib.suppress(OSError):
        (path / "cgroup.kill").write_text("1")
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            path.rmdir()
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)
        else:
            return


# --- sweeps ---------------------------------------------------------------------------------


def _marked_processes() -> list[tuple[int, str, str]]:
    """(pid, run key, worker identity) of every live process that carries the agent markers."""
    found = []
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            raw = Path(entry.path, "environ").read_bytes()
        except OSError:
            continue
        if RUN_VAR.encode() not in raw:
            continue
        env = dict(
            item.decode(errors="replace").partition("=")[::2] for item in raw.split(b"\0") if item
        )
        if RUN_VAR in env and WORKER_VAR in env:
            found.append((int(entry.name), env[RUN_VAR], env[WORKER_VAR]))
    return found


def _kill_marked(select: str | None) -> int:
    """SIGKILL marked processes: of run key `select`, or (None) of dead workers. Repeated until
    none is left (bounded), because a process may fork while it is being swept."""
    killed = 0
    for _ in range(20):
        targets = [
            pid
            for pid, key, identity in _marked_processes()
            if (key == select if select is not None else not worker_alive(identity))
        ]
        if not targets:
            break
        for pid in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        time.sleep(0.02)
    return killed


def kill_previous_copies(run_key: str) -> int:
    """Kill whatever is left of earlier runs of this handoff attempt's agent (a dead worker's
    grandchildren, or a copy whose activity attempt was abandoned), before a new copy starts."""
    killed = _kill_marked(run_key)
    root = cgroup_root()
    if root is not None:
        for path in root.glob(f"*.{_cgroup_key(run_key)}"):
            kill_cgroup(path)
    return killed


def sweep_dead_workers() -> int:
    """What workers that died left on this host: marked processes, cgroups, temp dirs."""
    killed = _kill_marked(None)
    root = cgroup_root()
    if root is not None:
        for path in root.iterdir():
            identity = path.name.partition(".")[0]
            if path.is_dir() and not path.name.startswith("probe-") and not worker_alive(identity):
                kill_cgroup(path)
    for path in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        identity = "-".join(path.name[len(TMP_PREFIX) :].split("-")[:2])
        if path.is_dir() and not worker_alive(identity):
            shutil.rmtree(path, ignore_errors=True)
    return killed


def prepare_worker_process() -> None:
    """Worker start-up: non-dumpable, and sweep what dead workers on this host left."""
    dumpable_off = make_non_dumpable()
    killed = sweep_dead_workers()
    log.info(
        "agent boundary: worker non-dumpable=%s, cgroup=%s, swept %d orphaned agent processes",
        dumpable_off,
        cgroup_root(),
        killed,
    )


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
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        _PRCTL(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        if os.geteuid() == 0:
            # Root with capabilities could read a non-dumpable worker's memory anyway: an
            # agent of a root worker runs as root without any capability.
            for cap in range(CAP_LAST_CAP + 1):
                _PRCTL(PR_CAPBSET_DROP, cap, 0, 0, 0)
    if os.getppid() != worker_pid:
        os._exit(125)  # the worker died before the death signal was armed


async def process_exit(pid: int) -> None:
    """Return once the process has exited. asyncio's Process.wait() also waits until its pipes
    close, which a grandchild that inherited stdout can put off for as long as it lives."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # already exited and reaped
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
        try:
            await asyncio.to_thread(kill_previous_copies, self.run_key)
            root = cgroup_root()
            if root is not None:
                self.cgroup = root / _cgroup_name(self.run_key, self.identity)
                try:
                    self.cgroup.mkdir()
                except OSError:
                    self.cgroup = None
            procs = str(self.cgroup / "cgroup.procs") if self.cgroup is not None else None
            worker_pid = os.getpid()
            # The fork happens in this (the event loop's) thread, which lives as long as the
            # worker: PR_SET_PDEATHSIG fires when the forking *thread* ends.
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self.env,
                start_new_session=True,  # its own session and process group
                preexec_fn=lambda: _child_setup(worker_pid, procs),
            )
        except BaseException:
            await asyncio.to_thread(self._cleanup)
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
        await asyncio.to_thread(self._cleanup)

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
