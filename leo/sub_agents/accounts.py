"""The OS accounts command agents run as (`LEO_AGENT_USER`).

Unset: an agent runs as the worker's own user (no boundary between them). Set, the worker must
be root (it switches each agent before exec), and every agent runs with the user's primary
group, no supplementary group, and a uid that is not the worker's:

- **its own uid per run** when the user has a subordinate uid range in `/etc/subuid` (`useradd`
  gives a new user one): a uid of that range that no live process has and no other run holds
  (a `flock` under `/run/leo-uid-locks`, released when the run or its worker ends). Then one
  agent cannot read another's `/proc/<pid>/environ`, memory or private HOME, and every process
  of that uid belongs to that run, which is how a run's leftovers are found and killed.
- otherwise **the user's own uid**, shared by all runs: agents are then cut off from the worker,
  but not from each other (`leo doctor` warns).

Nothing is created here: the user and its range are made by the image or the operator.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import random
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUBUID_FILE = Path("/etc/subuid")
# Not under TMP_PREFIX ("leo-agent-"), whose directories the dead-worker sweep removes, and in
# /run where it can be, so that workers with different TMPDIRs on one host share it.
LOCK_DIR = "leo-uid-locks"


class AgentUserError(ValueError):
    """LEO_AGENT_USER names no usable account, or the worker cannot switch to it."""


@dataclass(frozen=True)
class AgentAccount:
    name: str
    uid: int
    gid: int
    first: int | None = None  # the per-run uid range, when the user has one
    count: int = 0

    @property
    def per_run(self) -> bool:
        return self.first is not None and self.count > 0

    def owns(self, uid: int) -> bool:
        return self.first is not None and self.first <= uid < self.first + self.count

    def describe(self) -> str:
        if self.first is not None and self.per_run:
            last = self.first + self.count - 1
            return f"{self.name} (gid {self.gid}), one uid per run from {self.first}-{last}"
        return (
            f"{self.name} (uid {self.uid}, gid {self.gid}), shared by all runs: agents can "
            "read each other's environment"
        )


def subordinate_range(name: str, uid: int, source: Path = SUBUID_FILE) -> tuple[int, int] | None:
    try:
        lines = source.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        owner, _, rest = line.strip().partition(":")
        first, _, count = rest.partition(":")
        if owner in (name, str(uid)) and first.isdigit() and count.isdigit():
            return int(first), int(count)
    return None


def resolve(name: str, source: Path = SUBUID_FILE) -> AgentAccount:
    """The account `LEO_AGENT_USER` names; AgentUserError says what is wrong and how to fix it."""
    try:
        entry = pwd.getpwnam(name) if not name.isdigit() else pwd.getpwuid(int(name))
    except KeyError:
        raise AgentUserError(
            f"LEO_AGENT_USER={name}: no such user; create it (useradd --user-group {name}) "
            "or unset LEO_AGENT_USER"
        ) from None
    if entry.pw_uid == 0:
        raise AgentUserError(f"LEO_AGENT_USER={name} is root: name an unprivileged user")
    if os.geteuid() != 0:
        raise AgentUserError(
            f"LEO_AGENT_USER={name}: the worker runs as uid {os.geteuid()}, not root, so it "
            "cannot switch agents to that user; run the worker as root (as the image does) "
            "or unset LEO_AGENT_USER"
        )
    found = subordinate_range(entry.pw_name, entry.pw_uid, source)
    first, count = found if found else (None, 0)
    if first is not None and first <= 0:
        raise AgentUserError(f"{source}: the range of {name} starts at uid {first}")
    return AgentAccount(entry.pw_name, entry.pw_uid, entry.pw_gid, first, count)


_CONFIGURED: dict[str, AgentAccount | None] = {"account": None}


def configure(name: str | None) -> AgentAccount | None:
    """Set the account every later agent run uses (None: the worker's own user)."""
    _CONFIGURED["account"] = resolve(name) if name else None
    return _CONFIGURED["account"]


def configured() -> AgentAccount | None:
    return _CONFIGURED["account"]


# --- one uid per run ------------------------------------------------------------------------


def _lock_dir() -> Path:
    """Root's own directory for the uid locks; refused if anybody else could have made it."""
    run = Path("/run")
    base = run if run.is_dir() and os.access(run, os.W_OK) else Path(tempfile.gettempdir())
    path = base / LOCK_DIR
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise AgentUserError(f"{path} is not a private directory of uid {os.geteuid()}")
    return path


def uids_of(pid: int) -> set[int]:
    """The process's real, effective, saved and filesystem uids (from /proc/<pid>/status, which
    anybody may read; /proc/<pid> itself belongs to root when the process is non-dumpable)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("Uid:"):
            return {int(field) for field in line.split()[1:]}
    return set()


def process_uids() -> dict[int, list[int]]:
    """uid -> pids, for every live process (each under each of its uids)."""
    found: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            for uid in uids_of(int(entry.name)):
                found.setdefault(uid, []).append(int(entry.name))
    return found


def try_lock(uid: int) -> int | None:
    """An fd holding the run lock of `uid`, or None if another run holds it."""
    fd = os.open(_lock_dir() / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@dataclass
class UidLease:
    uid: int
    fd: int | None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # drops the flock
            self.fd = None


def lease(account: AgentAccount, run_key: str = "") -> UidLease:
    """The uid this run's agent gets: its own, held until `release()`, if the account has a
    range; else the account's uid. The lock file names `run_key`, so that a later copy of the
    same run can find this one (`uids_of_run`) even where it cannot read its environment."""
    if account.first is None or not account.per_run:
        return UidLease(account.uid, None)
    busy = process_uids()
    start = random.randrange(account.count)
    for step in range(account.count):
        uid = account.first + (start + step) % account.count
        if uid in busy:
            continue
        fd = try_lock(uid)
        if fd is not None:
            os.ftruncate(fd, 0)
            os.pwrite(fd, run_key.encode(), 0)
            return UidLease(uid, fd)
    raise AgentUserError(f"all {account.count} uids of {account.name}'s range are in use")


def uids_of_run(account: AgentAccount | None, run_key: str) -> list[int]:
    """The uids that live runs of `run_key` hold (their lock names it and is taken)."""
    if account is None or not account.per_run or not run_key:
        return []
    found = []
    for path in _lock_dir().iterdir():
        if not path.name.isdigit() or not account.owns(int(path.name)):
            continue
        with contextlib.suppress(OSError):
            if path.read_bytes() == run_key.encode():
                fd = try_lock(int(path.name))
                if fd is None:  # held: that run is alive
                    found.append(int(path.name))
                else:
                    os.close(fd)
    return found
