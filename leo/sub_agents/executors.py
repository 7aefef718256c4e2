"""How a sub-agent runs: a built-in rule, an in-process Python callable, or an external command.

A command agent gets the snapshot as JSON on stdin and prints its result as JSON on stdout,
so an LLM agent CLI or any script can be a LEO sub-agent. The caller enforces the timeout by
cancelling; a cancelled command has its whole process group killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import os
import signal
import sys
from typing import Any

from leo.domain.snapshot import HandoffSnapshot, SubAgentSpec
from leo.domain.verdicts import AgentOutput, error_output, validate_agent_output
from leo.sub_agents.builtin import BUILTIN_RULES

MAX_OUTPUT_BYTES = 1_000_000


class ExecutorConfigError(ValueError):
    """The catalogue row does not describe a runnable executor."""


def agent_payload(spec: SubAgentSpec, snapshot: HandoffSnapshot) -> dict[str, Any]:
    return {
        "sub_agent": {"code": spec.code, "name": spec.name, "priority": spec.priority},
        "handoff_type": snapshot.handoff_type.value,
        "phase": snapshot.phase,
        "snapshot": snapshot.model_dump(mode="json"),
    }


async def run_builtin(spec: SubAgentSpec, snapshot: HandoffSnapshot) -> AgentOutput:
    rule = BUILTIN_RULES.get(str(spec.executor_ref))
    if rule is None:
        raise ExecutorConfigError(
            f"{spec.code}: unknown built-in rule {spec.executor_ref!r}; "
            f"known: {', '.join(sorted(BUILTIN_RULES))}"
        )
    return rule(snapshot.model_copy(deep=True))


async def run_python(spec: SubAgentSpec, snapshot: HandoffSnapshot) -> AgentOutput:
    ref = spec.executor_ref
    module_name, _, attr = ref.partition(":") if isinstance(ref, str) else ("", "", "")
    # An empty or relative module name would make import_module raise ValueError/TypeError.
    if not module_name or module_name.startswith(".") or not attr:
        raise ExecutorConfigError(f"{spec.code}: python executor_ref must be 'module:function'")
    try:
        func = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ExecutorConfigError(f"{spec.code}: cannot load {ref}: {exc}") from exc
    copy = snapshot.model_copy(deep=True)
    if inspect.iscoroutinefunction(func):
        raw = await func(copy, spec)
    else:
        # A sync callable runs in a thread; on timeout we stop waiting but cannot kill it.
        raw = await asyncio.to_thread(func, copy, spec)
    return validate_agent_output(raw)


def command_argv(spec: SubAgentSpec) -> list[str]:
    ref = spec.executor_ref
    if not (isinstance(ref, list) and ref and all(isinstance(a, str) for a in ref)):
        raise ExecutorConfigError(
            f"{spec.code}: command executor_ref must be a JSON array of strings"
        )
    # "{python}" lets catalogue rows name the worker's own interpreter portably.
    return [sys.executable if arg == "{python}" else arg for arg in ref]


async def run_command(spec: SubAgentSpec, snapshot: HandoffSnapshot) -> AgentOutput:
    argv = command_argv(spec)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group, so we can kill its children too
        )
    except OSError as exc:
        return error_output(f"{spec.code}: cannot start {argv[0]}: {exc.strerror or exc}")
    try:
        stdout, stderr = await proc.communicate(json.dumps(agent_payload(spec, snapshot)).encode())
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                await proc.wait()
    if proc.returncode != 0:
        tail = stderr.decode(errors="replace").strip()[-500:]
        return error_output(f"{spec.code}: command exited with code {proc.returncode}: {tail}")
    if len(stdout) > MAX_OUTPUT_BYTES:
        return error_output(f"{spec.code}: command printed more than {MAX_OUTPUT_BYTES} bytes")
    try:
        raw = json.loads(stdout)
    except ValueError:
        shown = stdout.decode(errors="replace").strip()[:200]
        return error_output(f"{spec.code}: command printed something that is not JSON: {shown!r}")
    return validate_agent_output(raw)


async def run_executor(spec: SubAgentSpec, snapshot: HandoffSnapshot) -> AgentOutput:
    if spec.executor_kind == "builtin":
        return await run_builtin(spec, snapshot)
    if spec.executor_kind == "python":
        return await run_python(spec, snapshot)
    if spec.executor_kind == "command":
        return await run_command(spec, snapshot)
    raise ExecutorConfigError(f"{spec.code}: no executor configured")
