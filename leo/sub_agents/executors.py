"""How a sub-agent runs: a built-in rule, an in-process Python callable, or an external command.

A command agent gets the snapshot as JSON on stdin and prints its result as JSON on stdout,
so an LLM agent CLI or any script can be a LEO sub-agent. The caller enforces the timeout by
cancelling. A command's processes, environment and output are bounded by
leo.sub_agents.processes and leo.sub_agents.environment.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys
import uuid
from typing import Any

from leo.domain.snapshot import HandoffSnapshot, SubAgentSpec
from leo.domain.verdicts import AgentOutput, error_output, validate_agent_output
from leo.sub_agents.builtin import BUILTIN_RULES, BuiltinRule
from leo.sub_agents.environment import agent_environment
from leo.sub_agents.launcher import EXEC_FAILED, EXEC_FAILED_PREFIX
from leo.sub_agents.processes import AgentProcess

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


def builtin_rule(spec: SubAgentSpec) -> BuiltinRule:
    rule = BUILTIN_RULES.get(str(spec.executor_ref))
    if rule is None:
        raise ExecutorConfigError(
            f"{spec.code}: unknown built-in rule {spec.executor_ref!r}; "
            f"known: {', '.join(sorted(BUILTIN_RULES))}"
        )
    return rule


async def run_builtin(spec: SubAgentSpec, snapshot: HandoffSnapshot) -> AgentOutput:
    return builtin_rule(spec)(snapshot.model_copy(deep=True))


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


async def run_command(
    spec: SubAgentSpec, snapshot: HandoffSnapshot, run_key: str | None = None
) -> AgentOutput:
    """`run_key` (the sub-agent idempotency key) marks the agent's processes: a new run with
    the same key first kills whatever an earlier one left."""
    argv = command_argv(spec)
    try:
        env = agent_environment(spec.env_passthrough)
    except ValueError as exc:
        raise ExecutorConfigError(f"{spec.code}: {exc}") from exc
    payload = json.dumps(agent_payload(spec, snapshot)).encode()
    agent = AgentProcess(argv, env, run_key or f"adhoc-{uuid.uuid4().hex}")
    try:
        async with agent:
            run = await agent.communicate(payload, MAX_OUTPUT_BYTES)
    except OSError as exc:
        return error_output(f"{spec.code}: cannot start {argv[0]}: {exc.strerror or exc}")
    if run.stdout_overflow:
        return error_output(
            f"{spec.code}: command printed more than {MAX_OUTPUT_BYTES} bytes on stdout "
            "(the per-agent cap); LEO stopped reading and killed it"
        )
    if run.returncode == EXEC_FAILED and run.stderr_tail.startswith(EXEC_FAILED_PREFIX):
        reason = run.stderr_tail[len(EXEC_FAILED_PREFIX) :].decode(errors="replace")
        return error_output(f"{spec.code}: cannot start {reason}")
    if run.returncode != 0:
        tail = run.stderr_tail.decode(errors="replace").strip()[-500:]
        return error_output(f"{spec.code}: command exited with code {run.returncode}: {tail}")
    try:
        raw = json.loads(run.stdout)
    except ValueError:
        shown = run.stdout.decode(errors="replace").strip()[:200]
        return error_output(f"{spec.code}: command printed something that is not JSON: {shown!r}")
    return validate_agent_output(raw)


async def run_executor(
    spec: SubAgentSpec, snapshot: HandoffSnapshot, run_key: str | None = None
) -> AgentOutput:
    if spec.executor_kind == "builtin":
        return await run_builtin(spec, snapshot)
    if spec.executor_kind == "python":
        return await run_python(spec, snapshot)
    if spec.executor_kind == "command":
        return await run_command(spec, snapshot, run_key)
    raise ExecutorConfigError(f"{spec.code}: no executor configured")
