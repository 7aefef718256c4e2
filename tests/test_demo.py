"""The demo's story on the test stack: the plan's SD through SD-LIFECYCLE and its handoffs."""

from __future__ import annotations

import io

import asyncpg
from rich.console import Console

from leo.api import LeoClient
from leo.cli.demo import DEMO_AGENTS, run_demo
from leo.cli.render_runs import workflow_url
from leo.domain.handoffs import HandoffType, Step
from tests.support.factories import unique_key


async def test_demo_drives_the_hardening_sd_through_the_lifecycle(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    out = io.StringIO()
    sd_key = unique_key("SD-LEO-INFRA-HARDENING")

    outcome = await run_demo(
        leo,
        db_pool,
        console=Console(file=out, width=200),
        ui_url="http://127.0.0.1:8233",
        namespace="default",
        agent_seconds=0.5,
        sd_key=sd_key,
        auto_approve=True,
    )

    assert outcome.lifecycle.state == "completed"
    assert [s.step for s in outcome.lifecycle.steps] == list(Step)
    results = outcome.results
    assert [r.handoff_type for r in results] == list(HandoffType)
    assert all(r.accepted for r in results), [(r.handoff_type, r.issues) for r in results]
    assert results[-1].new_status == "completed"
    for result in results:
        assert set(DEMO_AGENTS) <= {a.code for a in result.sub_agents}
    printed = out.getvalue()
    assert "LEAD-FINAL-APPROVAL  ACCEPTED" in printed
    assert "EXEC-WORK  reported" in printed and "LEAD-APPROVAL  approved" in printed
    url = workflow_url("http://127.0.0.1:8233", "default", results[0])
    assert url is not None and url in printed.replace("\n", "")
    retro = await db_pool.fetchval(
        "SELECT quality_score FROM retrospectives r JOIN strategic_directives_v2 sd ON sd.id = r.sd_id "
        "WHERE sd.sd_key = $1",
        sd_key,
    )
    assert retro == 85

    # Running it again changes nothing: the completed lifecycle returns its summary.
    again = await run_demo(
        leo,
        db_pool,
        console=Console(file=io.StringIO()),
        ui_url=None,
        namespace="default",
        agent_seconds=0.5,
        sd_key=sd_key,
        auto_approve=True,
    )
    assert again.lifecycle == outcome.lifecycle
    version = await db_pool.fetchval(
        "SELECT transition_version FROM strategic_directives_v2 WHERE sd_key = $1", sd_key
    )
    assert version == 7  # five transitions and EXEC's report, once
