"""All five handoffs in order on one SD, then a replay of every history against this code.

Replaying recorded histories catches determinism breaks: a change to workflow code that
would make running workflows fail on the next worker deploy. Histories recorded from an
earlier version are checked in under histories/; set LEO_RECORD_HISTORIES=1 to refresh them.
"""

from __future__ import annotations

import json

import asyncpg
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from leo.api import LeoClient
from leo.domain.handoffs import HandoffType
from leo.infra.failures import LEO_DATA_CONVERTER
from tests.support.factories import create_sd
from tests.support.workflows import ALL_WORKFLOWS, HISTORIES, check_replay

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
        await check_replay(client, f"{handoff.value}:{sd.id}", handoff.snake)


async def test_checked_in_histories_replay_against_current_code() -> None:
    files = sorted(HISTORIES.glob("*.json"))
    expected = {h.snake for h in HandoffType} | {"sd_lifecycle"}
    assert {f.stem for f in files} == expected, "record with LEO_RECORD_HISTORIES=1"
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=LEO_DATA_CONVERTER)
    for path in files:
        record = json.loads(path.read_text())
        history = WorkflowHistory.from_json(record["workflow_id"], record["history"])
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
