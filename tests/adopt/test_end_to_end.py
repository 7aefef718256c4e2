"""LEO in adopt mode end to end: a worker whose pool connects as adopt mode does (schema leo
first on the search_path), the same workflows and activities as native mode, on an adopted
EHG_Engineer-shaped database: `leo handoff` five times, and a whole SD-LIFECYCLE."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from bench import adopt as bench_adopt
from bench.env import BenchEnv
from db import lifecycle as db_lifecycle
from db.pool import create_pool
from leo.api import LeoClient, LifecycleClient
from leo.api.client import HandoffFailed
from leo.dev_stack import Stack
from leo.domain.handoffs import HandoffType
from leo.domain.lifecycle_messages import ExecReport, LifecycleStatus
from leo.infra.settings import Settings
from leo.runtime import Runtime, load_gate_registry
from tests.adopt.fixture import LEO_ACTOR, new_sd
from tests.cli.helpers import Leo

EVIDENCE = {
    "risks": [{"risk": "r", "mitigation": "m"}],
    "commits": ["abc"],
    "security_findings": [],
}
HANDOFFS = list(HandoffType)


@dataclass
class AdoptedStack:
    leo: LeoClient
    pool: asyncpg.Pool
    settings: Settings


@pytest.fixture
async def adopted_stack(
    adopted: asyncpg.Connection, ehg_dsn: str, client: Client, settings: Settings
) -> AsyncIterator[AdoptedStack]:
    adopt_settings = settings.model_copy(
        update={"schema_mode": "adopt", "database_url": ehg_dsn, "adopt_actor": LEO_ACTOR}
    )
    pool = await create_pool(
        ehg_dsn, min_size=1, max_size=10, search_path=adopt_settings.search_path
    )
    runtime = Runtime(settings=adopt_settings, client=client, pool=pool, gates=load_gate_registry())
    queue = f"leo-adopt-{uuid.uuid4().hex[:8]}"
    try:
        async with runtime.worker(queue):
            yield AdoptedStack(LeoClient(client, pool, queue), pool, adopt_settings)
    finally:
        await pool.close()


async def test_leo_handoff_five_times_on_an_adopted_sd(
    adopted_stack: AdoptedStack, adopted: asyncpg.Connection
) -> None:
    sd_id, key = await new_sd(adopted, metadata=EVIDENCE)
    session = f"session_leo_{uuid.uuid4().hex[:8]}"
    claimed = await db_lifecycle.claim_sd(adopted_stack.pool, key, session)
    assert claimed["success"] is True, claimed
    # Their retrospective (their creation rules), which PLAN-TO-LEAD's gate reads.
    await adopted.execute(
        "INSERT INTO public.retrospectives (sd_id, retro_type, title, target_application, "
        "learning_category, quality_score) VALUES ($1, 'SD_COMPLETION', 'Retro', 'EHG_Engineer', "
        "'PROCESS_IMPROVEMENT', 85)",
        sd_id,
    )
    for handoff in HANDOFFS:
        result = await adopted_stack.leo.run_handoff(handoff, key, session_id=session)
        assert result.accepted, (handoff, result.failed_gate, result.issues)
    sd = await adopted.fetchrow(
        "SELECT status, current_phase, progress_percentage, transition_version, is_working_on "
        "FROM public.strategic_directives_v2 WHERE id = $1",
        sd_id,
    )
    assert sd is not None
    assert tuple(sd) == ("completed", "COMPLETED", 100, 6, False)
    rows = await adopted.fetch(
        "SELECT handoff_type, created_by FROM public.sd_phase_handoffs WHERE sd_id = $1 "
        "AND status = 'accepted' ORDER BY created_at",
        sd_id,
    )
    assert [(r["handoff_type"], r["created_by"]) for r in rows] == [
        (h.value, LEO_ACTOR) for h in HANDOFFS
    ]
    # `leo status` reads it through the views, as in native mode.
    status = await adopted_stack.leo.sd_status(key)
    assert (status.sd_id, status.status, status.current_phase) == (sd_id, "completed", "COMPLETED")
    assert status.transition_version == 6
    assert [h.handoff_type for h in status.handoffs][:5] == [h.value for h in reversed(HANDOFFS)]
    audit = await adopted_stack.leo.sd_audit(key)
    assert len(audit.entries) == 5


async def wait_for(lifecycle: LifecycleClient, sd_id: str, waiting_for: str) -> LifecycleStatus:
    async with asyncio.timeout(60):
        while True:
            try:
                status = await lifecycle.status(sd_id)
            except Exception:  # not started yet
                status = None
            if status is not None and status.waiting_for == waiting_for:
                return status
            await asyncio.sleep(0.1)


async def test_a_whole_sd_lifecycle_on_an_adopted_sd(
    adopted_stack: AdoptedStack, adopted: asyncpg.Connection
) -> None:
    sd_id, key = await new_sd(adopted, metadata=EVIDENCE)
    lifecycle = LifecycleClient(adopted_stack.leo)
    session = f"session_leo_{uuid.uuid4().hex[:8]}"
    handle = await lifecycle.start(key, session_id=session)
    await wait_for(lifecycle, sd_id, "exec_complete")
    # Their side sees LEO's claim, made through their own claim function.
    holder = await adopted.fetchval(
        "SELECT session_id FROM public.claude_sessions WHERE sd_key = $1", key
    )
    assert holder == session
    report = ExecReport(
        summary="implemented and tested",
        commits=["def456"],
        retrospective={"quality_score": 88, "what_went_well": ["parallel agents"]},
    )
    await lifecycle.report_exec_complete(sd_id, report)
    await wait_for(lifecycle, sd_id, "approval")
    await lifecycle.approve(sd_id, approver="lead@example.com", reason="ship it")
    final = await lifecycle.wait(handle)
    assert final.state == "completed", final
    # LEAD's decision reached the database (leo.sd_lead_decisions) and LEAD-FINAL's record.
    decision = await adopted.fetchrow(
        "SELECT decision, approver FROM leo.sd_lead_decisions WHERE sd_id = $1", sd_id
    )
    assert decision is not None and tuple(decision) == ("approved", "lead@example.com")
    approval = await adopted.fetchval(
        "SELECT metadata -> 'lead_approval' ->> 'approver' FROM public.sd_phase_handoffs "
        "WHERE sd_id = $1 AND handoff_type = 'LEAD-FINAL-APPROVAL'",
        sd_id,
    )
    assert approval == "lead@example.com"
    sd = await adopted.fetchrow(
        "SELECT status, current_phase, progress_percentage FROM public.strategic_directives_v2 "
        "WHERE id = $1",
        sd_id,
    )
    assert sd is not None and tuple(sd) == ("completed", "COMPLETED", 100)
    assert await adopted.fetchval(
        "SELECT released_reason FROM public.claude_sessions WHERE session_id = $1", session
    ) in ("completed",)
    assert (
        await adopted.fetchval(
            "SELECT count(*) FROM public.sd_transition_audit a JOIN public.strategic_directives_v2 sd "
            "ON sd.uuid_id = a.sd_id WHERE sd.id = $1 AND a.status = 'completed'",
            sd_id,
        )
        == 5
    )


async def test_the_cli_in_adopt_mode(
    adopted_stack: AdoptedStack, adopted: asyncpg.Connection, ehg_dsn: str, stack: Stack,
    tmp_path: Path,
) -> None:  # fmt: skip
    sd_id, key = await new_sd(adopted, metadata=EVIDENCE)
    session = f"session_leo_{uuid.uuid4().hex[:8]}"
    assert (await db_lifecycle.claim_sd(adopted_stack.pool, key, session))["success"]
    leo = Leo(
        env={
            "LEO_DATABASE_URL": ehg_dsn,
            "LEO_SCHEMA_MODE": "adopt",
            "TEMPORAL_ADDRESS": stack.temporal_address,
            "TEMPORAL_NAMESPACE": None,
            "LEO_TASK_QUEUE": adopted_stack.leo.task_queue,
            "LEO_DATA_DIR": str(tmp_path),
            "COLUMNS": "250",
        }
    )
    result = await leo.json("handoff", "LEAD-TO-PLAN", key, "--session", session)
    assert result["accepted"] is True
    status = await leo.json("status", key)
    assert (status["sd_id"], status["current_phase"], status["transition_version"]) == (
        sd_id, "PLAN_PRD", 2,
    )  # fmt: skip


async def test_the_adopt_benchmark_runs(
    stack: Stack, client: Client, db_pool: asyncpg.Pool, task_queue: str, tmp_path: Path
) -> None:
    env = BenchEnv(
        client=client,
        pool=db_pool,
        task_queue=task_queue,
        floor_task_queue=task_queue,
        database_url=stack.database_url,
        temporal_address=stack.temporal_address,
    )
    data = await bench_adopt.measure(env, handoffs=2)
    assert data["native"]["n"] == data["adopt"]["n"] == 2
    assert data["ratio"] > 0 and data["headline"][0]["verdict"] in ("PASS", "MISS")
    assert bench_adopt.chart(data, tmp_path).exists()


async def test_a_trigger_veto_reaches_leo_handoff_as_transition_failed(
    adopted_stack: AdoptedStack, adopted: asyncpg.Connection
) -> None:
    sd_id, key = await new_sd(adopted, metadata=EVIDENCE, quality_checked=False)
    session = f"session_leo_{uuid.uuid4().hex[:8]}"
    assert (await db_lifecycle.claim_sd(adopted_stack.pool, key, session))["success"]
    with pytest.raises(HandoffFailed) as failed:
        await adopted_stack.leo.run_handoff(HandoffType.LEAD_TO_PLAN, key, session_id=session)
    assert failed.value.code == "TRANSITION_FAILED"
    assert "quality_checked" in str(failed.value)
    sd = await adopted.fetchrow(
        "SELECT status, current_phase, transition_version FROM public.strategic_directives_v2 "
        "WHERE id = $1",
        sd_id,
    )
    assert sd is not None and tuple(sd) == ("active", "LEAD_APPROVAL", 1)
    audits = await adopted.fetch(
        "SELECT a.status FROM public.sd_transition_audit a JOIN public.strategic_directives_v2 sd "
        "ON sd.uuid_id = a.sd_id WHERE sd.id = $1",
        sd_id,
    )
    assert [a["status"] for a in audits] == ["failed"]
    assert (
        await adopted.fetchval(
            "SELECT count(*) FROM public.sd_phase_handoffs WHERE sd_id = $1", sd_id
        )
        == 0
    )


async def test_leo_doctor_in_adopt_mode(
    adopted_stack: AdoptedStack, ehg_dsn: str, stack: Stack, tmp_path: Path
) -> None:
    leo = Leo(
        env={
            "LEO_DATABASE_URL": ehg_dsn,
            "LEO_SCHEMA_MODE": "adopt",
            "TEMPORAL_ADDRESS": stack.temporal_address,
            "TEMPORAL_NAMESPACE": None,
            "LEO_TASK_QUEUE": adopted_stack.leo.task_queue,
            "LEO_DATA_DIR": str(tmp_path),
            "COLUMNS": "250",
        }
    )
    result = await leo("doctor", "--json")
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["leo.schema_mode"]["detail"] == (
        f"adopt: beside an EHG_Engineer database, actor {LEO_ACTOR}"
    )
    for name in ("postgres.adoption", "postgres.fingerprint", "postgres.actor"):
        assert checks[name]["ok"], checks[name]
    assert "postgres.migrations" not in checks
