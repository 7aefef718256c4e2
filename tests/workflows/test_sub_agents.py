"""Sub-agents inside a real handoff: dependencies, timeouts, bad output, missing executors."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Any

import asyncpg

from leo.api import LeoClient
from leo.domain.handoff_messages import HandoffOptions, HandoffResult
from leo.domain.handoffs import HandoffType
from leo.domain.verdicts import SubAgentResult, Verdict
from tests.support.factories import add_agent, create_sd, seed_accepted_handoff
from tests.support.faults import marker_times

EVIDENCE = {"commits": ["abc123"], "security_findings": []}


async def exec_ready_sd(pool: asyncpg.Pool, **kw: Any) -> str:
    sd = await create_sd(
        pool,
        ready_for="EXEC-TO-PLAN",
        sd_type="infrastructure",
        metadata=EVIDENCE,
        stories=[{"status": "in_progress"}],
        **kw,
    )
    await seed_accepted_handoff(pool, sd.id, "PLAN-TO-EXEC")
    return sd.id


def by_code(result: HandoffResult) -> dict[str, SubAgentResult]:
    return {r.code: r for r in result.sub_agents}


async def test_depends_on_chain_runs_in_order(
    leo: LeoClient, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    seconds = {"first": 0.5, "second": 0.5, "third": 0.1}
    first = await add_agent(
        db_pool, metadata={"seconds": 0.5, "marker_dir": str(tmp_path / "first")}
    )
    second = await add_agent(
        db_pool,
        depends_on=[first],
        metadata={"seconds": 0.5, "marker_dir": str(tmp_path / "second")},
    )
    third = await add_agent(
        db_pool,
        depends_on=[second],
        metadata={"seconds": 0.1, "marker_dir": str(tmp_path / "third")},
    )
    sd_id = await exec_ready_sd(db_pool)

    result = await leo.run_handoff(
        HandoffType.EXEC_TO_PLAN,
        sd_id,
        options=HandoffOptions(extra_sub_agents=[third, second, first]),
    )

    assert result.accepted
    started = {name: marker_times(tmp_path / name) for name in seconds}
    assert all(len(times) == 1 for times in started.values()), started
    # Each one started only after its dependency had finished.
    for earlier, later in itertools.pairwise(seconds):
        assert started[later][0] >= started[earlier][0] + seconds[earlier] - 0.05
    # All three recorded, once, by the commit step.
    recorded = await db_pool.fetchval(
        "SELECT count(*) FROM sub_agent_execution_results WHERE sd_id = $1 "
        "AND sub_agent_code = ANY($2)",
        sd_id,
        [first, second, third],
    )
    assert recorded == 3


async def test_dependant_of_a_failed_agent_does_not_run(
    leo: LeoClient, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    failing = await add_agent(db_pool, metadata={"verdict": "FAIL"}, priority=40)
    dependant = await add_agent(
        db_pool, depends_on=[failing], metadata={"marker_dir": str(tmp_path)}, priority=40
    )
    sd_id = await exec_ready_sd(db_pool)

    result = await leo.run_handoff(
        HandoffType.EXEC_TO_PLAN,
        sd_id,
        options=HandoffOptions(extra_sub_agents=[failing, dependant]),
    )

    agents = by_code(result)
    assert agents[failing].verdict == Verdict.FAIL
    assert agents[dependant].verdict == Verdict.BLOCKED and not agents[dependant].ran
    assert "dependency did not succeed" in agents[dependant].critical_issues[0]
    assert list(tmp_path.iterdir()) == [], "the dependant ran although its dependency failed"
    # A BLOCKED agent blocks the orchestration, so the handoff is rejected.
    assert not result.accepted and result.failed_gate == "SUB_AGENT_ORCHESTRATION"


async def test_agent_that_hangs_past_its_timeout_is_killed_and_reported_as_error(
    leo: LeoClient, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    pid_file = tmp_path / "agent.pid"
    hang = await add_agent(
        db_pool,
        kind="command",
        ref=[
            "{python}",
            "-c",
            "import os,sys,time; open(sys.argv[1],'w').write(str(os.getpid())); time.sleep(600)",
            str(pid_file),
        ],
        timeout=1.5,
        priority=90,
    )
    sd_id = await exec_ready_sd(db_pool)

    started = time.monotonic()
    result = await leo.run_handoff(
        HandoffType.EXEC_TO_PLAN, sd_id, options=HandoffOptions(extra_sub_agents=[hang])
    )

    assert time.monotonic() - started < 10
    agent = by_code(result)[hang]
    # A timeout is an error of the agent, not a call for a human.
    assert agent.verdict != Verdict.MANUAL_REQUIRED
    assert agent.verdict == Verdict.ERROR
    assert "timed out after 1.5 s" in agent.critical_issues[0]
    pid = int(pid_file.read_text())
    assert not _alive(pid), "the timed-out agent's process is still running"
    # ERROR from a priority-90 agent blocks the handoff.
    assert not result.accepted and result.sub_agent_verdict.verdict == Verdict.BLOCKED


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())


async def test_agent_that_prints_garbage_is_an_error(leo: LeoClient, db_pool: asyncpg.Pool) -> None:
    noisy = await add_agent(
        db_pool, kind="command", ref=["{python}", "-c", "print('hello, not json')"], priority=40
    )
    wrong = await add_agent(
        db_pool,
        kind="command",
        ref=["{python}", "-c", 'print(\'{"verdict": "GREAT", "confidence": 250}\')'],
        priority=40,
    )
    returns_str = await add_agent(db_pool, ref="tests.support.agents:garbage", priority=40)
    sd_id = await exec_ready_sd(db_pool)

    result = await leo.run_handoff(
        HandoffType.EXEC_TO_PLAN,
        sd_id,
        options=HandoffOptions(extra_sub_agents=[noisy, wrong, returns_str]),
    )

    agents = by_code(result)
    assert agents[noisy].verdict == Verdict.ERROR
    assert "not JSON" in agents[noisy].critical_issues[0]
    assert agents[wrong].verdict == Verdict.ERROR
    assert (
        "verdict" in agents[wrong].critical_issues[0]
        and "confidence" in agents[wrong].critical_issues[0]
    )
    assert agents[returns_str].verdict == Verdict.ERROR
    # Low-priority errors do not block: CONDITIONAL_PASS lets the handoff proceed.
    assert result.sub_agent_verdict.verdict == Verdict.CONDITIONAL_PASS and result.accepted


async def test_required_agent_without_executor_blocks_with_a_clear_issue(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    # A feature SD's verification requires PERFORMANCE and UAT, which ship without executors.
    sd = await create_sd(
        db_pool,
        ready_for="EXEC-TO-PLAN",
        sd_type="feature",
        metadata=EVIDENCE,
        stories=[{"status": "in_progress", "e2e_test_status": "passing"}],
    )
    await seed_accepted_handoff(db_pool, sd.id, "PLAN-TO-EXEC")

    result = await leo.run_handoff(HandoffType.EXEC_TO_PLAN, sd.id)

    agents = by_code(result)
    assert agents["PERFORMANCE"].verdict == Verdict.BLOCKED
    assert "no executor configured" in agents["PERFORMANCE"].critical_issues[0]
    assert not result.accepted
    version = await db_pool.fetchval(
        "SELECT transition_version FROM strategic_directives_v2 WHERE id = $1", sd.id
    )
    assert version == 1


async def test_agent_mutating_its_snapshot_changes_nothing_others_see(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    vandal = await add_agent(db_pool, ref="tests.support.agents:mutate_snapshot", priority=40)
    sd_id = await exec_ready_sd(db_pool)

    result = await leo.run_handoff(
        HandoffType.EXEC_TO_PLAN, sd_id, options=HandoffOptions(extra_sub_agents=[vandal])
    )

    assert result.accepted
    metadata = await db_pool.fetchval(
        "SELECT metadata FROM strategic_directives_v2 WHERE id = $1", sd_id
    )
    assert "tampered" not in metadata


async def test_handoff_option_overrides_the_catalogue_timeout(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    slow = await add_agent(db_pool, metadata={"seconds": 5}, timeout=60, priority=40)
    sd_id = await exec_ready_sd(db_pool)

    started = time.monotonic()
    result = await leo.run_handoff(
        HandoffType.EXEC_TO_PLAN,
        sd_id,
        options=HandoffOptions(extra_sub_agents=[slow], sub_agent_timeout_seconds=1),
    )

    assert time.monotonic() - started < 5
    agent = by_code(result)[slow]
    assert agent.verdict == Verdict.ERROR
    assert "timed out after 1 s" in agent.critical_issues[0]
