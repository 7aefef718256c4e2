"""The per-run launcher: the process a worker starts for each command agent run.

Run as `python -I -S launcher.py CONFIG_JSON ARGV...` (standard library only, a fresh
single-threaded process, so no set-up code runs between fork and exec in the threaded worker).
It keeps the worker's credentials; the agent it forks gets the run's own uid when CONFIG has one.

- It dies with the worker (parent-death signal), joins the run's cgroup when there is one, and
  is a child subreaper (PR_SET_CHILD_SUBREAPER): whatever the agent's tree leaves behind, a
  double-forked or `setsid` grandchild, with or without its environment, is re-parented to the
  launcher and not to init. So the run's processes are always the launcher's descendants.
- When the agent's own process exits, or the worker asks with SIGTERM, it kills every
  descendant: with a run uid, one `kill(-1, SIGKILL)` as that uid (atomic against fork); then,
  in rounds, each of its own children, which it alone reaps (an unreaped child's pid cannot be
  reused, so no stranger is signalled). It reaps them all and exits with the agent's status.
- If the agent cannot be executed, it writes `cannot start ARGV0: REASON` on stderr and exits
  with EXEC_FAILED.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

EXEC_FAILED = 127
EXEC_FAILED_PREFIX = b"leo-launcher: cannot start "
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
KILL_SECONDS = 5.0


class Stop(Exception):
    """The worker asked the run to end (SIGTERM)."""


def _stop(signum: int, frame: object) -> None:
    raise Stop


LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
CAPABILITY_VERSION_3 = 0x20080522


def _prctl() -> Callable[..., int]:
    prctl: Callable[..., int] = LIBC.prctl
    return prctl


def _clear_inheritable() -> None:
    """Empty inheritable set: for uid 0, exec grants inheritable | bounding as permitted."""
    header = (ctypes.c_uint32 * 2)(CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # two {effective, permitted, inheritable}
    if LIBC.capget(header, data) == 0:
        data[2] = data[5] = 0
        LIBC.capset(header, data)


def _children() -> list[int]:
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:  # no CONFIG_PROC_CHILDREN: scan /proc
        found = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat") as f:
                        stat = f.read()
                except OSError:
                    continue
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == me:
                    found.append(int(name))
        return found


def _reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _kill_descendants(uid: int | None) -> None:
    if uid is not None:
        helper = os.fork()
        if helper == 0:  # pragma: no cover - the child
            try:
                os.setgroups([])
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)  # every process of the run's uid but this one
            finally:
                os._exit(0)
        os.waitpid(helper, 0)
    deadline = time.monotonic() + KILL_SECONDS
    while time.monotonic() < deadline:
        _reap_all()
        children = _children()
        if not children:
            return
        for pid in children:  # our own children: unreaped, so their pids are theirs
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)


def _exec_agent(config: dict[str, Any], argv: list[str], errors: int) -> None:  # pragma: no cover
    prctl = _prctl()
    uid, gid = config.get("uid"), config.get("gid", -1)
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if os.geteuid() == 0:
        for cap in range(int(config.get("cap_last_cap", 40)) + 1):
            prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        _clear_inheritable()
    if uid is not None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)  # real, effective and saved: no capability is left
        os.chdir(config["home"])
    # Set after the credential change, which clears it.
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != config["launcher"]:
        os._exit(125)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(errors, (exc.strerror or str(exc)).encode())
    os._exit(EXEC_FAILED)


def _prepare(config: dict[str, Any]) -> None:
    prctl = _prctl()
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != config["worker"]:
        os._exit(125)  # the worker died before the death signal was armed
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    cgroup_procs = config.get("cgroup_procs")
    if cgroup_procs:
        with contextlib.suppress(OSError), open(cgroup_procs, "w") as f:
            f.write("0")  # best effort: the subreaper holds without it
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _exit_as(status: int | None) -> None:
    """Exit with the agent's status: its code, or the signal that ended it."""
    if status is None:
        os._exit(128 + signal.SIGTERM)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP have no handler
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(status))


def main() -> None:
    config = json.loads(sys.argv[1])
    argv = sys.argv[2:]
    _prepare(config)
    config["launcher"] = os.getpid()
    signal.signal(signal.SIGTERM, _stop)
    status: int | None = None
    read_errors, write_errors = os.pipe2(os.O_CLOEXEC)
    try:
        agent = os.fork()
        if agent == 0:  # pragma: no cover - the child
            try:
                os.close(read_errors)
                _exec_agent(config, argv, write_errors)
            except BaseException as exc:  # a set-up step failed: say which, never run on
                os.write(write_errors, f"{type(exc).__name__}: {exc}".encode())
            os._exit(EXEC_FAILED)
        os.close(write_errors)
        failure = os.read(read_errors, 4096)  # empty once the exec succeeded
        os.close(read_errors)
        if failure:
            os.write(2, EXEC_FAILED_PREFIX + argv[0].encode() + b": " + failure)
        # The agent's stdio is its own: the pipes close when its tree is gone.
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        while status is None:
            pid, wstatus = os.waitpid(-1, 0)  # reaps whatever is re-parented to us, too
            if pid == agent:
                status = wstatus
    except Stop:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _kill_descendants(config.get("uid") if config.get("own_uid") else None)
    _exit_as(status)


if __name__ == "__main__":
    main()
