"""`leo handoff`, `leo lifecycle ...`, `leo approve` and `leo worker` against the real stack."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from leo.dev_stack import Stack
from tests.cli.helpers import Leo, assert_one_error_line
from tests.support.factories import create_sd

ROOT = Path(__file__).resolve().parents[2]
# The installed console script, next to this interpreter.
LEO_BIN = str(Path(sys.executable).parent / "leo")
EVIDENCE = {
    "risks": [{"risk": "r", "mitigation": "m"}],
    "commits": ["abc"],
    "security_findings": [],
}


@pytest.fixture
def temporal_leo(leo: Leo, stack: Stack, task_queue: str) -> Leo:
    """The CLI pointed at the suite's dev server and the session worker's task queue."""
    return Leo(
        env={**leo.env, "TEMPORAL_ADDRESS": stack.temporal_address, "LEO_TASK_QUEUE": task_queue}
    )


async def test_handoff_command_prints_the_result_and_exit_codes_follow_the_outcome(
    temporal_leo: Leo, db_pool: asyncpg.Pool
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")

    accepted = await temporal_leo("handoff", "LEAD-TO-PLAN", sd.sd_key, "--json")
    assert accepted.exit_code == 0, accepted.output
    result = json.loads(accepted.stdout)
    assert result["outcome"] == "accepted" and result["new_phase"] == "PLAN_PRD"

    again = await temporal_leo("handoff", "LEAD-TO-PLAN", sd.sd_key, "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["run_id"] == result["run_id"]

    text = await temporal_leo("handoff", "LEAD-TO-PLAN", sd.sd_key)
    assert "LEAD-TO-PLAN  ACCEPTED" in text.stdout and "threshold 80" in text.stdout

    wrong = await temporal_leo("handoff", "EXEC-TO-PLAN", sd.sd_key)
    assert_one_error_line(wrong, 2, "INVALID_PHASE", "expects active / EXEC")

    unknown = await temporal_leo("handoff", "LEAD-TO-PLAN", "SD-DOES-NOT-EXIST")
    assert_one_error_line(unknown, 2, "SD not found: SD-DOES-NOT-EXIST")


async def test_rejected_handoff_exits_1_with_the_failed_gate(
    temporal_leo: Leo, db_pool: asyncpg.Pool
) -> None:
    sd = await create_sd(
        db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure", description=""
    )

    rejected = await temporal_leo("handoff", "LEAD-TO-PLAN", sd.sd_key, "--json")

    assert rejected.exit_code == 1, rejected.output
    result = json.loads(rejected.stdout)
    assert result["outcome"] == "rejected"
    assert result["failed_gate"] in ("GATE_SD_TRANSITION_READINESS", "SUB_AGENT_ORCHESTRATION")


async def test_lifecycle_commands_drive_an_sd_to_completion(
    temporal_leo: Leo, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    sd = await create_sd(
        db_pool,
        sd_type="infrastructure",
        metadata=EVIDENCE,
        with_prd=True,
        stories=[{"status": "ready"}],
    )
    started = await temporal_leo("lifecycle", "start", sd.sd_key, "--session", "cli-session")
    assert started.exit_code == 0, started.output

    early = await temporal_leo("approve", sd.sd_key, "--approver", "lead")
    assert_one_error_line(early, 2, "refused", "not waiting for an approval")
    held = await temporal_leo("lifecycle", "reclaim", sd.sd_key)
    assert_one_error_line(
        held, 2, "refused", f"the lifecycle of {sd.sd_key} has not lost its claim"
    )

    report = tmp_path / "report.json"
    report.write_text(
        json.dumps(
            {
                "summary": "done",
                "test_results": {sd.story_keys[0]: "passing"},
                "retrospective": {"quality_score": 90},
            }
        )
    )
    for _ in range(100):
        status = await temporal_leo.json("lifecycle", "status", sd.sd_key)
        if status["waiting_for"] == "exec_complete":
            break
        await asyncio.sleep(0.1)
    reported = await temporal_leo("lifecycle", "report", sd.sd_key, str(report))
    assert reported.exit_code == 0, reported.output

    for _ in range(200):
        status = await temporal_leo.json("lifecycle", "status", sd.sd_key)
        if status["waiting_for"] == "approval":
            break
        await asyncio.sleep(0.1)
    approved = await temporal_leo("approve", sd.sd_key, "--approver", "ada", "--reason", "good")
    assert approved.exit_code == 0 and "approved by ada" in approved.stdout

    for _ in range(200):
        status = await temporal_leo.json("lifecycle", "status", sd.sd_key)
        if status["state"] == "completed":
            break
        await asyncio.sleep(0.1)
    assert status["state"] == "completed"
    assert [s["outcome"] for s in status["steps"]][-2:] == ["approved", "accepted"]
    e2e = await db_pool.fetchval(
        "SELECT e2e_test_status FROM user_stories WHERE story_key = $1", sd.story_keys[0]
    )
    assert e2e == "passing"


async def test_worker_command_serves_handoffs_and_stops_on_sigterm(
    stack: Stack, db_pool: asyncpg.Pool, migrated_db: str
) -> None:
    queue = f"leo-cli-worker-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "LEO_DATABASE_URL": migrated_db,
        "TEMPORAL_ADDRESS": stack.temporal_address,
        "LEO_TASK_QUEUE": queue,
    }
    worker = await asyncio.create_subprocess_exec(
        LEO_BIN,
        "worker",
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
        handoff = await asyncio.create_subprocess_exec(
            LEO_BIN,
            "handoff",
            "LEAD-TO-PLAN",
            sd.sd_key,
            "--json",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(handoff.communicate(), timeout=60)
        assert handoff.returncode == 0, err.decode()
        assert out, f"no output; stderr: {err.decode()}"
        assert json.loads(out)["accepted"] is True
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(worker.communicate(), timeout=30)
    assert worker.returncode == 0, err.decode()
    assert f"task queue '{queue}'" in err.decode() and "Worker stopped." in err.decode()
