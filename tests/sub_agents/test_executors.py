"""Executors: built-in rules, in-process Python callables and external commands (real ones)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from leo.domain.snapshot import HandoffSnapshot, SubAgentSpec
from leo.domain.verdicts import Verdict
from leo.sub_agents.executors import (
    MAX_OUTPUT_BYTES,
    ExecutorConfigError,
    agent_payload,
    command_argv,
    run_executor,
)
from tests.support import builders

HERE = "tests.sub_agents.test_executors"


def spec(kind: str | None, ref: Any, **kw: Any) -> SubAgentSpec:
    return builders.spec("UNIT", executor_kind=kind, executor_ref=ref, **kw)


def python_code(source: str) -> list[str]:
    return ["{python}", "-c", source]


# --- no executor / built-in -----------------------------------------------------------------


@pytest.mark.parametrize("kind", [None, "shell", ""])
async def test_no_executor_configured_raises(kind: str | None) -> None:
    with pytest.raises(ExecutorConfigError, match="UNIT: no executor configured"):
        await run_executor(spec(kind, "x"), builders.snapshot())


@pytest.mark.parametrize("ref", ["NO_SUCH_RULE", "stories", None, ["STORIES"]])
async def test_builtin_with_unknown_rule_raises(ref: Any) -> None:
    with pytest.raises(ExecutorConfigError, match="unknown built-in rule") as err:
        await run_executor(spec("builtin", ref), builders.snapshot())
    assert "STORIES" in str(err.value)  # lists the known rules


async def test_builtin_runs_its_rule() -> None:
    out = await run_executor(spec("builtin", "STORIES"), builders.snapshot(stories=()))
    assert out.verdict is Verdict.FAIL
    assert out.critical_issues == ["SD SD-UNIT-001 has no user stories"]


# --- python ---------------------------------------------------------------------------------

calls: list[tuple[str, int]] = []


def sync_agent(snapshot: HandoffSnapshot, agent: SubAgentSpec) -> dict[str, Any]:
    calls.append(("sync", threading.get_ident()))
    return {
        "verdict": "PASS",
        "confidence": 88,
        "detailed_analysis": f"{agent.code} saw {snapshot.sd.sd_key} at {snapshot.phase}",
    }


async def async_agent(snapshot: HandoffSnapshot, agent: SubAgentSpec) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {
        "verdict": "WARNING",
        "confidence": 55,
        "warnings": [f"{len(snapshot.stories)} stories"],
    }


def garbage_agent(snapshot: HandoffSnapshot, agent: SubAgentSpec) -> Any:
    return "definitely not a verdict"


def invalid_agent(snapshot: HandoffSnapshot, agent: SubAgentSpec) -> Any:
    return {"verdict": "PASS", "confidence": 101}


def tampering_agent(snapshot: HandoffSnapshot, agent: SubAgentSpec) -> dict[str, Any]:
    snapshot.sd.metadata["tampered"] = True
    return {"verdict": "PASS", "confidence": 80}


def raising_agent(snapshot: HandoffSnapshot, agent: SubAgentSpec) -> Any:
    raise RuntimeError("agent crashed")


NOT_A_FUNCTION = 42


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (None, "must be 'module:function'"),
        (123, "must be 'module:function'"),
        (["tests.support.agents", "sleep_then_pass"], "must be 'module:function'"),
        ("tests.support.agents.sleep_then_pass", "must be 'module:function'"),
        ("no_such_module_xyz:run", "cannot load no_such_module_xyz:run"),
        (f"{HERE}:no_such_function", f"cannot load {HERE}:no_such_function"),
        (":sync_agent", "must be 'module:function'"),
        (f"{HERE}:", "must be 'module:function'"),
        (".relative:sync_agent", "must be 'module:function'"),
    ],
)
async def test_python_executor_with_bad_ref_raises(ref: Any, message: str) -> None:
    with pytest.raises(ExecutorConfigError, match=message.replace("(", r"\(")):
        await run_executor(spec("python", ref), builders.snapshot())


async def test_python_sync_callable_runs_in_a_thread_and_is_validated() -> None:
    calls.clear()
    out = await run_executor(spec("python", f"{HERE}:sync_agent"), builders.snapshot())

    assert out.verdict is Verdict.PASS
    assert out.confidence == 88
    assert out.detailed_analysis == "UNIT saw SD-UNIT-001 at PLAN_VERIFY"
    assert len(calls) == 1
    assert calls[0][1] != threading.get_ident()


async def test_python_async_callable_is_awaited() -> None:
    out = await run_executor(spec("python", f"{HERE}:async_agent"), builders.snapshot())
    assert out.verdict is Verdict.WARNING
    assert out.warnings == ["2 stories"]


async def test_python_garbage_and_invalid_output_become_error() -> None:
    garbage = await run_executor(spec("python", f"{HERE}:garbage_agent"), builders.snapshot())
    assert garbage.verdict is Verdict.ERROR
    assert "must be a JSON object, got str" in garbage.critical_issues[0]

    invalid = await run_executor(spec("python", f"{HERE}:invalid_agent"), builders.snapshot())
    assert invalid.verdict is Verdict.ERROR
    assert "confidence:" in invalid.critical_issues[0]


async def test_python_callable_that_is_not_callable_raises_type_error() -> None:
    with pytest.raises(TypeError):
        await run_executor(spec("python", f"{HERE}:NOT_A_FUNCTION"), builders.snapshot())


async def test_python_agent_exception_propagates_to_the_caller() -> None:
    # The activity turns it into verdict ERROR; the executor does not hide it.
    with pytest.raises(RuntimeError, match="agent crashed"):
        await run_executor(spec("python", f"{HERE}:raising_agent"), builders.snapshot())


async def test_python_agent_gets_a_copy_of_the_snapshot() -> None:
    snapshot = builders.snapshot(metadata={"original": True})
    out = await run_executor(spec("python", f"{HERE}:tampering_agent"), snapshot)
    assert out.verdict is Verdict.PASS
    assert snapshot.sd.metadata == {"original": True}


# --- command --------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", [None, "python -c 1", [], ["python", 1], [["python"]]])
def test_command_ref_must_be_a_list_of_strings(ref: Any) -> None:
    with pytest.raises(ExecutorConfigError, match="JSON array of strings"):
        command_argv(spec("command", ref))


def test_python_token_is_the_workers_interpreter() -> None:
    argv = command_argv(spec("command", ["{python}", "agent.py", "--x={python}"]))
    assert argv == [sys.executable, "agent.py", "--x={python}"]


ECHO_AGENT = """
import json, sys
payload = json.load(sys.stdin)
print(json.dumps({
    "verdict": "PASS",
    "confidence": 77,
    "detailed_analysis": json.dumps({
        "keys": sorted(payload),
        "sub_agent": payload["sub_agent"],
        "handoff_type": payload["handoff_type"],
        "phase": payload["phase"],
        "sd_key": payload["snapshot"]["sd"]["sd_key"],
        "stories": len(payload["snapshot"]["stories"]),
    }),
    "recommendations": ["unknown fields are ignored"],
    "model": "ignored",
}))
"""


async def test_command_gets_the_payload_on_stdin_and_its_json_is_validated() -> None:
    agent = spec("command", python_code(ECHO_AGENT), priority=85)
    snapshot = builders.snapshot()
    out = await run_executor(agent, snapshot)

    assert out.verdict is Verdict.PASS
    assert out.confidence == 77
    assert out.recommendations == ["unknown fields are ignored"]
    seen = json.loads(out.detailed_analysis)
    assert seen == {
        "keys": ["handoff_type", "phase", "snapshot", "sub_agent"],
        "sub_agent": {"code": "UNIT", "name": "UNIT agent", "priority": 85},
        "handoff_type": "EXEC-TO-PLAN",
        "phase": "PLAN_VERIFY",
        "sd_key": "SD-UNIT-001",
        "stories": 2,
    }
    # The payload is exactly agent_payload(), which is plain JSON.
    payload = agent_payload(agent, snapshot)
    assert json.loads(json.dumps(payload)) == payload


async def test_command_non_zero_exit_is_error_with_stderr_tail() -> None:
    source = 'import sys; sys.stdout.write(\'{"verdict": "PASS", "confidence": 90}\'); '
    source += "sys.stderr.write('x' * 2000 + 'THE END'); sys.exit(3)"
    out = await run_executor(spec("command", python_code(source)), builders.snapshot())

    assert out.verdict is Verdict.ERROR
    assert out.confidence == 0
    issue = out.critical_issues[0]
    assert issue.startswith("UNIT: command exited with code 3: ")
    assert issue.endswith("THE END")
    assert len(issue) < 600  # only the tail of stderr


async def test_command_killed_by_a_signal_is_error() -> None:
    source = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    out = await run_executor(spec("command", python_code(source)), builders.snapshot())
    assert out.verdict is Verdict.ERROR
    assert f"exited with code {-signal.SIGKILL}" in out.critical_issues[0]


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("print('all good, trust me')", "not JSON: 'all good, trust me'"),
        ("pass", "not JSON: ''"),
        ("print('[1, 2]')", "must be a JSON object, got list"),
        ('print(\'{"verdict": "PASS", "confidence": "high"}\')', "confidence:"),
        ('print(\'{"verdict": "MAYBE", "confidence": 50}\')', "verdict:"),
    ],
)
async def test_command_bad_output_is_error(source: str, fragment: str) -> None:
    out = await run_executor(spec("command", python_code(source)), builders.snapshot())
    assert out.verdict is Verdict.ERROR
    assert fragment in out.critical_issues[0]


async def test_command_output_size_is_limited() -> None:
    source = f"import sys; sys.stdout.write('x' * {MAX_OUTPUT_BYTES + 1})"
    out = await run_executor(spec("command", python_code(source)), builders.snapshot())
    assert out.verdict is Verdict.ERROR
    assert f"more than {MAX_OUTPUT_BYTES} bytes" in out.critical_issues[0]


async def test_command_that_cannot_start_is_error() -> None:
    out = await run_executor(
        spec("command", ["/nonexistent/leo-agent-binary"]), builders.snapshot()
    )
    assert out.verdict is Verdict.ERROR
    assert out.critical_issues[0].startswith("UNIT: cannot start /nonexistent/leo-agent-binary:")


async def test_command_that_ignores_stdin_still_works() -> None:
    source = "import json; print(json.dumps({'verdict': 'PASS', 'confidence': 60}))"
    big = builders.snapshot(metadata={"blob": "y" * 500_000})  # larger than a pipe buffer
    out = await run_executor(spec("command", python_code(source)), big)
    assert out.verdict is Verdict.PASS


# --- cancellation kills the whole process group ---------------------------------------------


def live_members(pgid: int) -> list[int]:
    """Processes in process group `pgid` that are not zombies."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        state, _ppid, pgrp = text[text.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
async def test_cancelling_a_command_kills_its_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "pgid"
    script = f"echo $$ > {shlex.quote(str(pid_file))}; sleep 300 & sleep 300; wait"
    task = asyncio.create_task(
        run_executor(spec("command", ["sh", "-c", script]), builders.snapshot())
    )
    pgid = 0
    try:
        await asyncio.sleep(0.3)
        deadline = time.monotonic() + 5
        while not pid_file.exists() or not pid_file.read_text().strip():
            assert time.monotonic() < deadline, "the command never started"
            await asyncio.sleep(0.05)
        pgid = os.getpgid(int(pid_file.read_text()))
        # The shell is in its own group (its launcher's, start_new_session) with its sleeps.
        assert pgid != os.getpgid(0)
        deadline = time.monotonic() + 5
        while len(live_members(pgid)) < 3:
            assert time.monotonic() < deadline, f"child tree not up: {live_members(pgid)}"
            await asyncio.sleep(0.05)

        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        deadline = time.monotonic() + 5
        while live_members(pgid):
            assert time.monotonic() < deadline, f"still alive: {live_members(pgid)}"
            await asyncio.sleep(0.05)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if pgid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
