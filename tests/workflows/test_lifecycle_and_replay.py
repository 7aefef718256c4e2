"""All five handoffs in order on one SD, then a replay of every recorded history.

Replaying recorded histories catches determinism breaks: a change to workflow code that
would make running workflows fail on the next worker deploy. The corpus in histories/ only
grows: every file there replays against this code, one test per file, and the corpus must hold
each workflow type, each patch the workflow code asks for, and each scenario below. Its
README.md says what each file is and how to record more (`bin/record-histories <shape>`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.worker import Replayer

from leo.api import LeoClient
from leo.domain.handoffs import HandoffType
from leo.domain.refusals import FailureType
from leo.infra.failures import LEO_DATA_CONVERTER
from tests.support.factories import create_sd
from tests.support.workflows import (
    ALL_WORKFLOWS,
    HISTORIES,
    ROOT,
    accepted_updates,
    check_replay,
    continued_from_another_run,
    ending,
    load_history,
    patches_in,
    readme_files,
    record_history,
    workflow_name,
)

LIFECYCLE_EVIDENCE = {
    "risks": [{"risk": "lock contention", "mitigation": "try-lock and retry with jitter"}],
    "commits": ["4f1c2d9"],
    "security_findings": [{"severity": "high", "status": "resolved", "title": "advisory lock key"}],
}


async def test_all_five_handoffs_in_order_then_histories_replay(
    leo: LeoClient, client: Client, db_pool: asyncpg.Pool
) -> None:
    sd = await create_sd(
        db_pool,
        sd_type="infrastructure",
        metadata=LIFECYCLE_EVIDENCE,
        with_prd=True,
        stories=[
            {"status": "ready"},
            {"status": "in_progress", "e2e_test_path": "tests/e2e/lock.py"},
        ],
    )
    await db_pool.execute(
        "INSERT INTO retrospectives (sd_id, quality_score) VALUES ($1, 85)", sd.id
    )

    seen = []
    for handoff in HandoffType:
        result = await leo.run_handoff(handoff, sd.sd_key)
        assert result.accepted, (handoff, result.failed_gate, result.issues)
        seen.append((result.new_status, result.new_phase, result.transition_version))

    assert seen == [
        ("in_progress", "PLAN_PRD", 2),
        ("active", "EXEC", 3),
        ("active", "EXEC_COMPLETE", 4),
        ("pending_approval", "LEAD_FINAL", 5),
        ("completed", "COMPLETED", 6),
    ]
    audit = await db_pool.fetch(
        "SELECT transition_type, status FROM sd_transition_audit WHERE sd_id = $1 ORDER BY started_at",
        sd.id,
    )
    assert [tuple(a) for a in audit] == [
        (h.value.replace("-", "_"), "completed") for h in HandoffType
    ]

    for handoff in HandoffType:
        await check_replay(client, f"{handoff.value}:{sd.id}", "accepted")


CORPUS = sorted(HISTORIES.glob("*.json"))


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
async def test_recorded_history_replays_against_current_code(path: Path) -> None:
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=LEO_DATA_CONVERTER)
    result = await replayer.replay_workflow(load_history(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


def patches_in_workflow_code() -> set[str]:
    """Every patch id a `workflow.patched(NAME)` call in workflows/ asks for."""
    import importlib

    found: set[str] = set()
    for source in sorted((ROOT / "workflows").glob("*.py")):
        module = None
        for node in ast.walk(ast.parse(source.read_text())):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "patched"
            ):
                continue
            [arg] = node.args
            if isinstance(arg, ast.Constant):
                found.add(str(arg.value))
                continue
            where = f"workflows/{source.name}:{node.lineno}"
            assert isinstance(arg, ast.Name), f"{where}: name the patch id by a module constant"
            module = module or importlib.import_module(f"workflows.{source.stem}")
            patch_id = getattr(module, arg.id, None)
            assert isinstance(patch_id, str), f"{where}: {arg.id} is not a constant of the module"
            found.add(patch_id)
    return found


def test_the_corpus_holds_every_workflow_type_patch_and_scenario() -> None:
    histories = {path.name: load_history(path) for path in CORPUS}
    types = {workflow_name(h) for h in histories.values()}
    assert types >= {h.snake for h in HandoffType} | {"sd_lifecycle"}

    # Each patch branch the code has; patch ids of retired code may stay in old files.
    patches = {p for h in histories.values() for p in patches_in(h)}
    missing = patches_in_workflow_code() - patches
    assert not missing, f"no recorded history goes through patch {sorted(missing)}: record one"
    # The release before every patch.
    assert any(not patches_in(h) for h in histories.values())

    handoffs = [h for h in histories.values() if workflow_name(h) != "sd_lifecycle"]
    lifecycles = [h for h in histories.values() if workflow_name(h) == "sd_lifecycle"]
    assert any(ending(h) == f"failed:{FailureType.HANDOFF_REJECTED.value}" for h in handoffs), (
        "no rejected handoff"
    )
    assert any("retry" in accepted_updates(h) for h in lifecycles), "no lifecycle retry"
    assert any("reclaim" in accepted_updates(h) for h in lifecycles), "no lifecycle reclaim"
    assert any(ending(h) == "continued_as_new" for h in lifecycles), "no continue-as-new"
    assert any(continued_from_another_run(h) for h in lifecycles), "no resumed run"


def test_the_corpus_readme_names_every_file_and_no_other() -> None:
    assert readme_files() == {p.name for p in CORPUS}


def test_recording_adds_files_and_never_overwrites(tmp_path: Path) -> None:
    history = load_history(HISTORIES / "plan_to_exec.json")
    (tmp_path / "README.md").write_text((HISTORIES / "README.md").read_text())

    first = record_history(history, "accepted", "shape_a", tmp_path)
    assert first is not None and first.name == "plan_to_exec-shape_a-accepted.json"
    before = first.read_bytes()
    assert record_history(history, "accepted", "shape_a", tmp_path) is None
    assert first.read_bytes() == before
    second = record_history(history, "accepted", "shape_b", tmp_path)
    assert second is not None and second != first
    assert readme_files(tmp_path) == readme_files() | {first.name, second.name}
