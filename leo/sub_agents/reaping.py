"""What outlives a command agent's run: markers, per-run cgroups, and the sweeps that end it.

Every agent process carries `LEO_AGENT_RUN` (its sub-agent idempotency key), `LEO_AGENT_COPY`
(its copy) and `LEO_AGENT_WORKER` (its worker's pid and start time), inherited by its whole tree. A starting
worker kills the marked processes of workers that are gone (`prepare_worker_process`), and a
starting agent first kills any live copy of the same key (`kill_previous_copies`). Where a
cgroup v2 directory can be made under the worker's own, each run gets one.
"""

from __future__ import annotations

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
from functools import cache
from pathlib import Path

from leo.sub_agents import accounts

log = logging.getLogger(__name__)

RUN_VAR = "LEO_AGENT_RUN"
WORKER_VAR = "LEO_AGENT_WORKER"
COPY_VAR = "LEO_AGENT_COPY"
TMP_PREFIX = "leo-agent-"
CGROUP_PARENT = "leo-agents"

PR_SET_DUMPABLE = 4


def _load_prctl() -> Callable[..., int] | None:
    # Loaded once in the worker; an agent's own set-up runs in its launcher (launcher.py).
    if sys.platform != "linux":
        return None
    with contextlib.suppress(OSError, AttributeError):
        prctl: Callable[..., int] = ctypes.CDLL("libc.so.6", use_errno=True).prctl
        return prctl
    return None


PRCTL = _load_prctl()


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
    if PRCTL is None:
        return False
    return bool(PRCTL(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0)


# --- per-run cgroup v2 ----------------------------------------------------------------------


@cache
def cgroup_root() -> Path | None:
    """`<cgroup2 mount>/<this process's cgroup>/leo-agents`, when it can be created and written,
    else None (then the launcher, the parent-death signal and the sweeps still hold)."""
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


def cgroup_name(run_key: str, identity: str, copy: str) -> str:
    """Unique per copy: an earlier copy's late clean-up can never remove a later one's."""
    return f"{identity}.{_cgroup_key(run_key)}.{copy}"


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


def _environ(pid: int) -> dict[str, str] | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    if RUN_VAR.encode() not in raw:
        return None
    return dict(
        item.decode(errors="replace").partition("=")[::2] for item in raw.split(b"\0") if item
    )


def marked_processes() -> list[tuple[int, str, str]]:
    """(pid, run key, worker identity) of every live process that carries the agent markers."""
    found = []
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        env = _environ(int(entry.name))
        if env is not None and RUN_VAR in env and WORKER_VAR in env:
            found.append((int(entry.name), env[RUN_VAR], env[WORKER_VAR]))
    return found


def kill_verified(pid: int, still: Callable[[int], bool]) -> bool:
    """SIGKILL `pid` only if it is still the process `still` recognises. The pidfd is opened
    first and the check made after: if the pid was reused in between, the check sees the new
    process; if it is reused after, the pidfd still names the old one (and the signal fails)."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # gone (or no pidfd: then nothing is signalled rather than a stranger)
        return False
    try:
        if not still(pid):
            return False
        signal.pidfd_send_signal(fd, signal.SIGKILL)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _kill_marked(select: Callable[[dict[str, str]], bool]) -> int:
    """SIGKILL the marked processes `select` picks, each checked again through its pidfd.
    Repeated until none is left (bounded), because a process may fork while it is swept."""
    killed = 0

    def still(pid: int) -> bool:
        env = _environ(pid)
        return env is not None and select(env)

    for _ in range(20):
        targets = [pid for pid, _key, _identity in marked_processes() if still(pid)]
        if not targets:
            break
        killed += sum(kill_verified(pid, still) for pid in targets)
        time.sleep(0.02)
    return killed


def kill_copy(copy: str) -> int:
    """The run's end: kill what still carries this copy's marker (a launcher that was killed
    outright cannot have killed it)."""
    return _kill_marked(lambda env: env.get(COPY_VAR) == copy)


def kill_uid(uid: int) -> int:
    """Kill every process that has `uid` (a run's own uid: all of them are that run's), each
    checked again through its pidfd. Repeated until none is left (bounded)."""
    killed = 0
    for _ in range(20):
        targets = accounts.process_uids().get(uid, [])
        if not targets:
            break
        killed += sum(kill_verified(pid, lambda p: uid in accounts.uids_of(p)) for pid in targets)
        time.sleep(0.02)
    return killed


def sweep_dead_runs_uids(account: accounts.AgentAccount | None) -> int:
    """Processes with a uid of the agent range that no live run holds (its worker died)."""
    if account is None or not account.per_run:
        return 0
    killed = 0
    for uid in sorted(u for u in accounts.process_uids() if account.owns(u)):
        fd = accounts.try_lock(uid)
        if fd is not None:  # nobody holds it: its worker is gone
            try:
                killed += kill_uid(uid)
            finally:
                os.close(fd)
    return killed


def kill_previous_copies(run_key: str) -> int:
    """Kill whatever is left of earlier runs of this handoff attempt's agent (a dead worker's
    grandchildren, or a copy whose activity attempt was abandoned), before a new copy starts."""
    killed = _kill_marked(lambda env: env.get(RUN_VAR) == run_key)
    # A copy that runs as its own uid: found by its uid lock, even where its environment
    # cannot be read (root without CAP_SYS_PTRACE, as in compose) or was cleared.
    for uid in accounts.uids_of_run(accounts.configured(), run_key):
        killed += kill_uid(uid)
    root = cgroup_root()
    if root is not None:
        for path in root.glob(f"*.{_cgroup_key(run_key)}.*"):
            kill_cgroup(path)
    return killed


def sweep_dead_workers() -> int:
    """What workers that died left on this host: marked processes, cgroups, temp dirs."""
    killed = _kill_marked(lambda env: not worker_alive(env.get(WORKER_VAR, "")))
    killed += sweep_dead_runs_uids(accounts.configured())
    root = cgroup_root()
    if root is not None:
        for path in root.iterdir():
            identity = path.name.partition(".")[0]
            if path.is_dir() and not path.name.startswith("probe-") and not worker_alive(identity):
                kill_cgroup(path)
    for path in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        identity = "-".join(path.name[len(TMP_PREFIX) :].split("-")[:2])
        if (
            path.is_dir()
            and re.fullmatch(r"\d+-\d+", identity)  # a run's dir: <prefix><pid>-<start>-...
            and not worker_alive(identity)
        ):
            shutil.rmtree(path, ignore_errors=True)
    return killed


def prepare_worker_process(agent_user: str | None = None) -> None:
    """Worker start-up: the agents' account (LEO_AGENT_USER; AgentUserError if unusable),
    non-dumpable, and sweep what dead workers on this host left."""
    account = accounts.configure(agent_user)
    if os.getpid() == 1:  # each run's launcher reaps its own; what escapes one comes here
        log.warning("the worker is PID 1: run it under an init (docker run --init, compose init)")
    dumpable_off = make_non_dumpable()
    killed = sweep_dead_workers()
    log.info(
        "agent boundary: agents run as %s; worker non-dumpable=%s, cgroup=%s, swept %d "
        "orphaned agent processes",
        account.describe() if account else "the worker's own user (LEO_AGENT_USER unset)",
        dumpable_off,
        cgroup_root(),
        killed,
    )
