"""The runnable Python API example in examples/ works against the real stack."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg

from leo.dev_stack import Stack
from tests.support.factories import create_sd

ROOT = Path(__file__).resolve().parents[1]


async def run_example(
    stack: Stack, migrated_db: str, task_queue: str, *args: str
) -> tuple[int, str]:
    env = {
        **os.environ,
        "LEO_DATABASE_URL": migrated_db,
        "TEMPORAL_ADDRESS": stack.temporal_address,
        "LEO_TASK_QUEUE": task_queue,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / "run_handoff.py"),
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_run_handoff_example_prints_the_result_and_status(
    stack: Stack, migrated_db: str, task_queue: str, db_pool: asyncpg.Pool
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")

    code, out = await run_example(stack, migrated_db, task_queue, "LEAD-TO-PLAN", sd.sd_key)

    assert code == 0, out
    assert f"LEAD-TO-PLAN accepted for {sd.sd_key}" in out
    assert "VALIDATION sub-agent: PASS (95)" in out
    assert f"{sd.sd_key} is now in_progress / PLAN_PRD, version 2" in out

    code, out = await run_example(stack, migrated_db, task_queue, "EXEC-TO-PLAN", sd.sd_key)
    assert code == 2 and "refused (INVALID_PHASE)" in out
