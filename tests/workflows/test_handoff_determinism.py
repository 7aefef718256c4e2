"""The handoff workflows run outside the workflow sandbox (issue 19, R5; workflows/steps.py), so
nothing at run time stops their code from reading a clock, drawing a random number or doing
I/O. Two guards instead: every recorded history replays against the code
(test_lifecycle_and_replay.py), and this test keeps those sources out of the modules their
workflow code runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from temporalio.workflow._definition import _Definition

from workflows.registry import HANDOFF_WORKFLOWS
from workflows.steps import HANDOFF_SANDBOXED

ROOT = Path(__file__).resolve().parents[2]
# What a handoff's workflow code runs: the pipeline and the modules it takes its steps from.
MODULES = [
    "workflows/pipeline.py",
    "workflows/legacy_pipeline.py",
    "workflows/steps.py",
    "workflows/outcome.py",
    "workflows/agent_results.py",
    *[f"workflows/{t.snake}.py" for t in HANDOFF_WORKFLOWS],
]
# Clocks, randomness, the environment, processes, threads and the network or database.
FORBIDDEN_MODULES = {
    "time",
    "random",
    "secrets",
    "uuid",
    "os",
    "sys",
    "socket",
    "subprocess",
    "threading",
    "asyncpg",
    "db",
    "httpx",
    "aiohttp",
}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "sleep", "urandom", "getenv"}
DATETIME_ALLOWED = {"timedelta"}


def test_the_handoff_workflows_run_outside_the_sandbox_and_the_lifecycle_inside() -> None:
    from workflows.sd_lifecycle import SdLifecycleWorkflow

    assert HANDOFF_SANDBOXED is False
    for workflow_class in HANDOFF_WORKFLOWS.values():
        assert _Definition.must_from_class(workflow_class).sandboxed is False
    assert _Definition.must_from_class(SdLifecycleWorkflow).sandboxed is True


@pytest.mark.parametrize("module", MODULES)
def test_handoff_workflow_code_reads_no_clock_randomness_or_io(module: str) -> None:
    tree = ast.parse((ROOT / module).read_text())
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
            problems += [f"import {n}" for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
            problems += [f"import {n}" for n in names if n == "datetime"]
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            if root in FORBIDDEN_MODULES:
                problems.append(f"from {node.module} import ...")
            if node.module == "datetime":
                problems += [
                    f"from datetime import {a.name}"
                    for a in node.names
                    if a.name not in DATETIME_ALLOWED
                ]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in FORBIDDEN_CALLS
            and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "workflow")
        ):
            problems.append(f"line {node.lineno}: .{node.func.attr}(...)")
    assert problems == [], f"{module}: {problems}"
