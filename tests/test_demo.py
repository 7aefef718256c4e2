"""The demo's story, run on the test stack: the plan's SD through all five handoffs."""

from __future__ import annotations

import io

import asyncpg
from rich.console import Console

from db.transitions import HandoffType
from leo.api import LeoClient
from leo.demo import DEMO_AGENTS, run_demo, workflow_url
from tests.factories import unique_key


async def test_demo_drives_the_hardening_sd_through_all_five_handoffs(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    out = io.StringIO()
    console = Console(file=out, width=160)
    sd_key = unique_key("SD-LEO-INFRA-HARDENING")

    results = await run_demo(
        leo,
        db_pool,
        console=console,
        ui_url="http://127.0.0.1:8233",
        namespace="default",
        agent_seconds=0.5,
        sd_key=sd_key,
    )

    assert [r.handoff_type for r in results] == list(HandoffType)
    assert all(r.accepted for r in results), [(r.handoff_type, r.issues) for r in results]
    assert results[-1].new_status == "completed" and results[-1].new_phase == "COMPLETED"
    for result in results:
        codes = {a.code for a in result.sub_agents}
        assert set(DEMO_AGENTS) <= codes, "the example command agents did not run"
    printed = out.getvalue()
    assert "LEAD-FINAL-APPROVAL  ACCEPTED" in printed
    assert workflow_url("http://127.0.0.1:8233", "default", results[0]) in printed.replace("\n", "")

    # Running it again changes nothing: every handoff returns its first, accepted result.
    again = await run_demo(
        leo,
        db_pool,
        console=Console(file=io.StringIO()),
        ui_url=None,
        namespace="default",
        agent_seconds=0.5,
        sd_key=sd_key,
    )
    assert [(r.run_id, r.audit_id) for r in again] == [(r.run_id, r.audit_id) for r in results]
    version = await db_pool.fetchval(
        "SELECT transition_version FROM strategic_directives_v2 WHERE sd_key = $1", sd_key
    )
    assert version == 6
