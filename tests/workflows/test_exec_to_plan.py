"""EXEC-TO-PLAN end to end on the real dev server and PostgreSQL."""

from __future__ import annotations

import time

import asyncpg
from temporalio.client import Client

from leo.domain.handoffs import HandoffType
from tests.support.db import fetch_one
from tests.support.factories import add_agent, create_sd, seed_accepted_handoff
from tests.support.workflows import start_handoff

INFRA_EVIDENCE = {"commits": ["abc123"], "security_findings": []}


async def test_exec_to_plan_runs_five_agents_in_parallel_and_transitions_atomically(
    client: Client, task_queue: str, db_pool: asyncpg.Pool
) -> None:
    sd = await create_sd(
        db_pool,
        ready_for="EXEC-TO-PLAN",
        sd_type="infrastructure",
        metadata=INFRA_EVIDENCE,
        stories=[
            {"status": "in_progress", "e2e_test_path": "tests/e2e/a.spec.ts"},
            {"status": "ready"},
            {"status": "blocked"},
        ],
    )
    await seed_accepted_handoff(db_pool, sd.id, "PLAN-TO-EXEC")
    agents = [await add_agent(db_pool, metadata={"seconds": 2}) for _ in range(5)]

    started = time.monotonic()
    handle = await start_handoff(
        client, task_queue, HandoffType.EXEC_TO_PLAN, sd.id, options={"extra_sub_agents": agents}
    )
    result = await handle.result()
    elapsed = time.monotonic() - started

    assert result.accepted, result.issues
    assert elapsed < 6, f"5 x 2 s agents took {elapsed:.1f} s: they did not run in parallel"
    # GITHUB does not apply to infrastructure SDs (the policy the gates follow too).
    assert [r.code for r in result.sub_agents] == ["SECURITY", *sorted(agents)]
    assert all(r.verdict == "PASS" and r.ran and not r.reused for r in result.sub_agents)
    assert result.threshold == 80 and result.sd_type == "infrastructure"
    # MANDATORY_TESTING_VALIDATION does not apply to infrastructure SDs: reported, excluded.
    skipped = [g for g in result.gates if g.status == "SKIPPED"]
    assert [g.name for g in skipped] == ["MANDATORY_TESTING_VALIDATION"]
    assert result.normalized_score == 100
    assert (result.new_status, result.new_phase, result.transition_version) == (
        "active",
        "EXEC_COMPLETE",
        2,
    )

    stories = await db_pool.fetch(
        "SELECT status, validation_status, e2e_test_status FROM user_stories WHERE sd_id = $1 ORDER BY story_key",
        sd.id,
    )
    assert [tuple(s) for s in stories] == [
        ("completed", "validated", "passing"),
        ("completed", "validated", "not_created"),
        ("blocked", "pending", "not_created"),
    ]
    prd = await fetch_one(
        db_pool, "SELECT status, phase FROM product_requirements_v2 WHERE sd_id = $1", sd.id
    )
    assert tuple(prd) == ("verification", "verification")
    audit = await db_pool.fetch(
        "SELECT id, status, request_id FROM sd_transition_audit WHERE sd_id = $1", sd.id
    )
    assert len(audit) == 1 and audit[0]["status"] == "completed"
    assert str(audit[0]["id"]) == result.audit_id
    assert audit[0]["request_id"] == f"{result.workflow_id}/{result.run_id}"
    rows = await db_pool.fetch(
        "SELECT sub_agent_code, verdict FROM sub_agent_execution_results WHERE sd_id = $1", sd.id
    )
    assert sorted(r["sub_agent_code"] for r in rows) == sorted(["SECURITY", *agents])
    handoff = await fetch_one(
        db_pool,
        "SELECT status, validation_score FROM sd_phase_handoffs WHERE sd_id = $1 AND handoff_type = 'EXEC-TO-PLAN'",
        sd.id,
    )
    assert handoff["status"] == "accepted" and handoff["validation_score"] == 100
