"""A command agent's processes end with its run (exit, timeout, cancellation, overflow), it
gets only a minimal environment, and a worker's start-up sweeps what dead workers left."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.sub_agents import run_with_deadline
from leo.domain.verdicts import Verdict
from leo.infra.settings import Settings
from leo.services.doctor import check_agent_user
from leo.sub_agents import accounts, processes, reaping
from leo.sub_agents.environment import agent_environment, refused_names
from leo.sub_agents.executors import MAX_OUTPUT_BYTES, ExecutorConfigError, run_executor
from tests.support import builders
from tests.support.agent_user import HOLDER, PRYING, ensure_agent_user, system_python

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux process semantics")

PASS_JSON = '{"verdict": "PASS", "confidence": 70}'


def spec(ref: Any, **kw: Any) -> Any:
    return builders.spec("UNIT", executor_kind="command", executor_ref=ref, **kw)


def alive(pid: int) -> bool:
    """Running, that is: exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


async def gone(*pids: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def read_pids(path: Path, count: int, within: float = 10.0) -> list[int]:
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(OSError, ValueError):
            pids = [int(p) for p in path.read_text().split()]
            if len(pids) >= count:
                return pids
        assert time.monotonic() < deadline, f"{path} never got {count} pids"
        await asyncio.sleep(0.05)


def spawner(pid_file: Path, *, setsid: bool = False, then: str = "") -> list[str]:
    """sh that starts a `sleep 300` holding its stdout (optionally in a new session, escaping
    the process group, and with an empty environment, so without the run's markers), writes
    both pids, then runs `then`."""
    sleeper = "setsid env -i sleep 300" if setsid else "sleep 300"
    return ["sh", "-c", f"{sleeper} & echo $$ $! > {pid_file}; {then}"]


def reaped(pid: int) -> bool:
    """Gone from the process table: not even a zombie waiting for its parent."""
    return not Path(f"/proc/{pid}").exists()


# --- the run ends: the whole tree goes --------------------------------------------------------


async def test_a_grandchild_holding_stdout_is_killed_when_the_agent_exits(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    async with asyncio.timeout(20):  # before: the run waited for the grandchild (300 s)
        out = await run_executor(
            spec(spawner(pid_file, then=f"echo '{PASS_JSON}'")), builders.snapshot()
        )
    assert out.verdict is Verdict.PASS
    agent, grandchild = await read_pids(pid_file, 2)
    assert await gone(agent, grandchild), f"grandchild {grandchild} outlived the agent's run"


async def test_without_a_cgroup_the_process_group_still_ends_with_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processes, "cgroup_root", lambda: None)
    pid_file = tmp_path / "pids"
    async with asyncio.timeout(20):
        out = await run_executor(
            spec(spawner(pid_file, then=f"echo '{PASS_JSON}'")), builders.snapshot()
        )
    assert out.verdict is Verdict.PASS
    agent, grandchild = await read_pids(pid_file, 2)
    assert await gone(agent, grandchild)


DOUBLE_FORK = (
    "(setsid env -i sh -c 'echo $$ > {pid_file}; exec sleep 300' > /dev/null 2>&1 &); "
    "sleep 0.3; echo '{PASS_JSON}'"
)


async def test_an_orphan_without_cgroup_or_markers_is_killed_and_reaped_at_the_run_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: a `setsid` grandchild outlived the run for the worker's whole life when there
    # was no cgroup (the Docker default), and `env -i` hid it from every sweep.
    monkeypatch.setattr(processes, "cgroup_root", lambda: None)
    pid_file = tmp_path / "pids"
    async with asyncio.timeout(20):
        out = await run_executor(
            spec(spawner(pid_file, setsid=True, then=f"echo '{PASS_JSON}'")), builders.snapshot()
        )
    assert out.verdict is Verdict.PASS
    _agent, escaped = await read_pids(pid_file, 2)
    assert not alive(escaped), "a setsid grandchild without markers outlived the run"
    assert reaped(escaped), "its zombie was left for init"
    # Double-forked: its parent exited at once, and it does not hold the agent's stdout.
    double = tmp_path / "double"
    argv = ["sh", "-c", DOUBLE_FORK.format(pid_file=double, PASS_JSON=PASS_JSON)]
    async with asyncio.timeout(20):
        out = await run_executor(spec(argv), builders.snapshot())
    assert out.verdict is Verdict.PASS
    (orphan,) = await read_pids(double, 1)
    assert not alive(orphan), "a double-forked orphan outlived the run"
    assert reaped(orphan)


@pytest.mark.skipif(reaping.cgroup_root() is None, reason="no writable cgroup v2 here")
async def test_a_grandchild_that_left_the_process_group_dies_with_the_run_cgroup(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "pids"
    async with asyncio.timeout(20):
        out = await run_executor(
            spec(spawner(pid_file, setsid=True, then=f"echo '{PASS_JSON}'")), builders.snapshot()
        )
    assert out.verdict is Verdict.PASS
    _agent, escaped = await read_pids(pid_file, 2)
    assert await gone(escaped), "a setsid grandchild outlived the run"
    root = reaping.cgroup_root()
    assert root is not None
    assert not list(root.glob(f"{reaping.worker_identity()}.*")), "the run's cgroup is left"


async def test_a_timed_out_agent_and_its_grandchild_are_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    agent_spec = spec(spawner(pid_file, setsid=True, then="sleep 300"), timeout_seconds=1.0)
    started = time.monotonic()
    out = await ActivityEnvironment().run(run_with_deadline, agent_spec, builders.snapshot())
    assert time.monotonic() - started < 8
    assert out.verdict is Verdict.ERROR
    assert out.critical_issues == ["UNIT timed out after 1 s and was cancelled"]
    agent, grandchild = await read_pids(pid_file, 2)
    assert await gone(agent, grandchild)


async def test_a_cancelled_agent_and_its_escaped_grandchild_are_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    task = asyncio.create_task(
        run_executor(spec(spawner(pid_file, setsid=True, then="sleep 300")), builders.snapshot())
    )
    agent, grandchild = await read_pids(pid_file, 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await gone(agent, grandchild)


async def test_a_cancellation_at_any_point_of_the_start_leaves_nothing(tmp_path: Path) -> None:
    # Cancelled between fork and the pipes being connected, asyncio itself killed only the
    # child and then waited for its pipes, held by the grandchild: the run hung for 300 s.
    for n in range(30):
        key = f"start-race-{os.getpid()}-{n}"
        argv = spawner(tmp_path / f"pids-{n}", setsid=True, then="sleep 300")
        task = asyncio.create_task(run_executor(spec(argv), builders.snapshot(), key))
        await asyncio.sleep(n * 0.002)
        task.cancel()
        async with asyncio.timeout(15):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.sleep(0.05)
        left = [pid for pid, run, _ in reaping.marked_processes() if run == key]
        assert not [pid for pid in left if alive(pid)], f"cancelled after {n * 2} ms: {left}"
        with contextlib.suppress(OSError, ValueError):  # the unmarked setsid one, if it started
            pids = [int(p) for p in (tmp_path / f"pids-{n}").read_text().split()]
            assert await gone(*pids), f"cancelled after {n * 2} ms: {pids}"


# --- bounded output -------------------------------------------------------------------------


async def test_stdout_over_the_cap_stops_the_agent_at_once() -> None:
    # 500 MB of output: the run ends after about 1 MB, long before the agent could finish.
    source = "import sys\nb = b'x' * (1 << 20)\nfor _ in range(500): sys.stdout.buffer.write(b)"
    started = time.monotonic()
    out = await run_executor(spec(["{python}", "-c", source]), builders.snapshot())
    assert time.monotonic() - started < 10
    assert out.verdict is Verdict.ERROR
    assert out.critical_issues == [
        f"UNIT: command printed more than {MAX_OUTPUT_BYTES} bytes on stdout (the per-agent "
        "cap); LEO stopped reading and killed it"
    ]


async def test_stderr_keeps_only_a_bounded_tail() -> None:
    source = (
        "import sys\nb = b'e' * (1 << 20)\n"
        "for _ in range(50): sys.stderr.buffer.write(b)\n"
        "sys.stderr.write('THE LAST WORDS'); sys.exit(4)"
    )
    argv = ["{python}", "-c", source]
    async with processes.AgentProcess(
        [sys.executable if a == "{python}" else a for a in argv], agent_environment(()), "tail"
    ) as agent:
        run = await agent.communicate(b"", MAX_OUTPUT_BYTES)
    assert run.returncode == 4
    assert len(run.stderr_tail) == processes.STDERR_TAIL_BYTES
    assert run.stderr_tail.endswith(b"THE LAST WORDS")
    out = await run_executor(spec(argv), builders.snapshot())
    assert out.critical_issues[0].startswith("UNIT: command exited with code 4: eeee")
    assert out.critical_issues[0].endswith("THE LAST WORDS")


# --- environment ----------------------------------------------------------------------------

ENV_DUMP = """
import json, os, sys
try:
    with open(f"/proc/{os.getppid()}/environ", "rb") as f:
        worker_environ = f.read().decode(errors="replace")
except OSError as exc:
    worker_environ = f"refused: {type(exc).__name__}"
tmp = os.environ.get("TMPDIR", "")
print(json.dumps({"verdict": "PASS", "confidence": 50, "detailed_analysis": json.dumps({
    "env": dict(os.environ), "worker_environ": worker_environ,
    "tmpdir_private": os.path.isdir(tmp) and os.listdir(tmp) == [],
})}))
"""


async def test_an_agent_gets_a_minimal_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LEO_DATABASE_URL", "postgresql://leo:hunter2-db@127.0.0.1/leo")
    monkeypatch.setenv("PGPASSWORD", "hunter2-pg")
    monkeypatch.setenv("SOME_WORKER_SETTING", "hunter2-other")
    monkeypatch.setenv("AGENT_TOKEN", "for-the-agent")
    out = await run_executor(
        spec(["{python}", "-c", ENV_DUMP], env_passthrough=("AGENT_TOKEN", "NOT_SET_ANYWHERE")),
        builders.snapshot(),
    )
    assert out.verdict is Verdict.PASS, out.critical_issues
    seen = json.loads(out.detailed_analysis)
    env = seen["env"]
    assert set(env) <= {"PATH", "HOME", "LANG", "TZ", "TMPDIR", "AGENT_TOKEN", *processes_vars()}
    assert {"PATH", "LANG", "TMPDIR", "AGENT_TOKEN"} <= set(env)
    assert env["AGENT_TOKEN"] == "for-the-agent"
    assert "hunter2" not in json.dumps(env)
    assert seen["tmpdir_private"]
    assert not Path(env["TMPDIR"]).exists(), "the private temp dir outlived the run"


def processes_vars() -> set[str]:
    return {reaping.RUN_VAR, reaping.WORKER_VAR, reaping.COPY_VAR}


@pytest.mark.parametrize(
    "name",
    [
        "LEO_DATABASE_URL",
        "LEO_PAYLOAD_KEY",
        "LEO_PAYLOAD_KEY_OLD",
        "TEMPORAL_API_KEY",
        "TEMPORAL_TLS_CLIENT_KEY_DATA",
        "temporal_api_key",
        "PGPASSWORD",
        "DATABASE_URL",
        "TMPDIR",
        "NOT A NAME",
        "",
    ],
)
async def test_a_secret_or_invalid_passthrough_name_is_refused(name: str) -> None:
    assert refused_names([name])
    with pytest.raises(ExecutorConfigError, match="UNIT: env_passthrough may not name"):
        await run_executor(spec(["true"], env_passthrough=(name,)), builders.snapshot())


def test_ordinary_names_pass_through() -> None:
    assert refused_names(["GH_TOKEN", "OPENAI_API_KEY", "HTTPS_PROXY", "_X1"]) == []
    env = agent_environment(["GH_TOKEN"], {"GH_TOKEN": "t", "PATH": "/bin", "SECRET": "s"})
    assert env == {"PATH": "/bin", "LANG": "C.UTF-8", "GH_TOKEN": "t"}


def test_the_worker_can_be_made_non_dumpable() -> None:
    code = (
        "from leo.sub_agents.reaping import make_non_dumpable\n"
        "import ctypes; assert make_non_dumpable()\n"
        "print(ctypes.CDLL('libc.so.6').prctl(3, 0, 0, 0, 0))"  # PR_GET_DUMPABLE
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert done.stdout.strip() == "0"


# --- the start-up sweep -----------------------------------------------------------------------


def marked_sleeper(run_key: str, identity: str) -> subprocess.Popen[bytes]:
    env = {"PATH": os.defpath, reaping.RUN_VAR: run_key, reaping.WORKER_VAR: identity}
    return subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)


async def test_the_sweep_kills_what_dead_workers_left_and_nothing_else() -> None:
    dead_worker = "999999999-1"  # no such pid
    orphan = marked_sleeper("orphan-key", dead_worker)
    ours = marked_sleeper("live-key", reaping.worker_identity())
    try:
        await asyncio.sleep(0.2)  # let exec finish, so /proc/<pid>/environ is the sleeper's
        killed = reaping.sweep_dead_workers()
        assert killed >= 1
        assert orphan.wait(5) == -9
        assert ours.poll() is None, "a live worker's agent was swept"
        assert reaping.kill_previous_copies("live-key") >= 1
        assert ours.wait(5) == -9
    finally:
        for proc in (orphan, ours):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(5)


# --- one copy, and no stranger is signalled ---------------------------------------------------


async def test_an_old_copys_late_clean_up_leaves_the_new_copy_running(tmp_path: Path) -> None:
    # Before: both copies of a key had the same cgroup, so the old copy's clean-up (late, as
    # after a long drain) killed the new copy's cgroup, and the new copy with it.
    key = f"one-copy-{os.getpid()}"
    argv = ["sh", "-c", 'echo $$ > "$0"; sleep 300']
    env = agent_environment(())
    old = processes.AgentProcess([*argv, str(tmp_path / "old")], env, key)
    new = processes.AgentProcess([*argv, str(tmp_path / "new")], env, key)
    await old.__aenter__()
    (old_pid,) = await read_pids(tmp_path / "old", 1)
    await new.__aenter__()  # kills the old copy first
    try:
        (new_pid,) = await read_pids(tmp_path / "new", 1)
        assert await gone(old_pid), "the new copy started while the old one ran"
        await old.__aexit__(None, None, None)
        await asyncio.sleep(0.3)
        assert alive(new_pid), "the old copy's clean-up killed the new copy"
        assert old.copy != new.copy
    finally:
        await new.__aexit__(None, None, None)
    assert await gone(new_pid)


def test_a_verified_kill_never_signals_a_process_the_check_does_not_recognise() -> None:
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        assert not reaping.kill_verified(sleeper.pid, lambda pid: False)
        assert sleeper.poll() is None
        assert reaping.kill_verified(sleeper.pid, lambda pid: pid == sleeper.pid)
        assert sleeper.wait(5) == -9
        # Reaped: its pid names nothing, or a newer process, and nothing is signalled.
        assert not reaping.kill_verified(sleeper.pid, lambda pid: False)
    finally:
        with contextlib.suppress(ProcessLookupError):
            sleeper.kill()


# --- LEO_AGENT_USER: each run its own uid -------------------------------------------------------


@pytest.fixture
def agent_user() -> Iterator[accounts.AgentAccount]:
    account = ensure_agent_user()
    configured = accounts.configure(account.name)
    assert configured is not None
    try:
        yield configured
    finally:
        accounts.configure(None)


async def test_agents_of_an_agent_user_cannot_read_each_other_the_worker_or_its_files(
    agent_user: accounts.AgentAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processes, "cgroup_root", lambda: None)
    python = system_python()
    meet = Path(tempfile.mkdtemp(prefix="leo-meet-"))
    meet.chmod(0o1777)
    secret = tmp_path / "client.key"  # as the worker's certificate key: root's, 0600
    secret.write_text("hunter2-key")
    secret.chmod(0o600)
    monkeypatch.setenv("HOLDER_TOKEN", "hunter2-token")
    try:
        holder, prying = await asyncio.gather(
            run_executor(
                spec([python, "-c", HOLDER, str(meet)], env_passthrough=("HOLDER_TOKEN",)),
                builders.snapshot(),
            ),
            run_executor(spec([python, "-c", PRYING, str(meet), str(secret)]), builders.snapshot()),
        )
        grandchild = int((meet / "grandchild").read_text())
    finally:
        shutil.rmtree(meet, ignore_errors=True)
    assert holder.verdict is Verdict.PASS, holder.critical_issues
    assert prying.verdict is Verdict.PASS, prying.critical_issues
    seen = json.loads(prying.detailed_analysis)
    assert agent_user.owns(seen["uid"]) and seen["uid"] == seen["euid"]
    assert agent_user.owns(seen["holder_uid"])
    assert seen["uid"] != seen["holder_uid"], "two runs got the same uid"
    assert seen["gid"] == agent_user.gid and seen["groups"] == []
    assert seen["home_owner"] == seen["uid"] and seen["home_is_tmpdir"]
    assert seen["holder_environ"] == "refused: PermissionError"
    assert seen["worker_environ"] == "refused: PermissionError"
    assert seen["secret_file"] == "refused: PermissionError"
    assert seen["token_seen_in"] == []
    assert await gone(grandchild), "the agent user's setsid grandchild outlived the run"
    assert reaped(grandchild)
    assert not accounts.process_uids().keys() & {seen["uid"], seen["holder_uid"]}


def test_an_agent_user_that_cannot_be_used_is_refused_with_the_fix() -> None:
    with pytest.raises(accounts.AgentUserError, match="no such user; create it"):
        accounts.resolve("leo-no-such-user-here")
    with pytest.raises(accounts.AgentUserError, match="is root"):
        accounts.resolve("root")


def test_doctor_names_the_agent_user_and_its_uid_range(agent_user: accounts.AgentAccount) -> None:
    check = check_agent_user(Settings(agent_user=agent_user.name))
    assert check.ok, check
    assert check.detail.startswith(f"agents run as {agent_user.name}")
    assert "one uid per run" in check.detail
    missing = check_agent_user(Settings(agent_user="leo-no-such-user-here"))
    assert not missing.ok and missing.level == "error" and "no such user" in missing.detail


def test_the_start_up_sweep_kills_range_uids_no_live_run_holds(
    agent_user: accounts.AgentAccount,
) -> None:
    # What a SIGKILLed worker's agents leave (`setsid`, no markers): found by their uid.
    assert agent_user.first is not None
    held = accounts.lease(agent_user)
    orphan_uid = next(u for u in range(agent_user.first, agent_user.first + 100) if u != held.uid)

    def sleeper_as(uid: int) -> subprocess.Popen[bytes]:
        argv = ["setpriv", f"--reuid={uid}", f"--regid={agent_user.gid}", "--clear-groups"]
        return subprocess.Popen([*argv, "setsid", "sleep", "300"], env={"PATH": os.defpath})

    if shutil.which("setpriv") is None:
        pytest.skip("no setpriv here to start a process as another uid")
    orphan, running = sleeper_as(orphan_uid), sleeper_as(held.uid)
    try:
        time.sleep(0.3)
        reaping.sweep_dead_workers()  # (another session's sweep may have been first)
        assert orphan.wait(5) == -9
        assert running.poll() is None, "a live run's process was swept"
        # The sweep also removes dead workers' temp dirs: never the uid locks, which would
        # free a live run's uid for the next run (both would then kill each other's tree).
        assert accounts.try_lock(held.uid) is None, "the live run's uid lock was lost"
    finally:
        held.release()
        for proc in (orphan, running):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(5)


async def test_a_new_copy_ends_an_old_one_found_only_by_its_uid(
    agent_user: accounts.AgentAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No cgroup, and the old copy cleared its markers: only its uid lock names its run.
    monkeypatch.setattr(processes, "cgroup_root", lambda: None)
    meet = Path(tempfile.mkdtemp(prefix="leo-meet-"))
    meet.chmod(0o1777)
    key = f"uid-copy-{os.getpid()}"
    argv = ["sh", "-c", 'setsid env -i sleep 300 & echo $! > "$0"; exec env -i sleep 300']
    env = agent_environment(())
    old = processes.AgentProcess([*argv, str(meet / "old")], env, key)
    new = processes.AgentProcess([*argv, str(meet / "new")], env, key)
    try:
        await old.__aenter__()
        (old_pid,) = await read_pids(meet / "old", 1)
        assert not [p for p, run, _ in reaping.marked_processes() if p == old_pid]
        await new.__aenter__()
        (new_pid,) = await read_pids(meet / "new", 1)
        assert await gone(old_pid), "the new copy started while the old one ran"
        await old.__aexit__(None, None, None)
        assert alive(new_pid), "the old copy's clean-up killed the new copy"
        await new.__aexit__(None, None, None)
        assert await gone(new_pid)
    finally:
        for copy in (old, new):  # a second exit only sweeps again
            with contextlib.suppress(Exception):
                await copy.__aexit__(None, None, None)
        shutil.rmtree(meet, ignore_errors=True)


async def test_an_agent_whose_set_up_fails_is_an_error_naming_the_step(
    agent_user: accounts.AgentAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run's HOME cannot be entered: the agent never runs, and the reason is given.
    real_chown = os.chown
    monkeypatch.setattr(os, "chown", lambda path, uid, gid: real_chown(path, 0, 0))
    out = await run_executor(spec(["sh", "-c", f"echo '{PASS_JSON}'"]), builders.snapshot())
    assert out.verdict is Verdict.ERROR
    assert out.critical_issues[0].startswith("UNIT: cannot start sh: PermissionError"), out
