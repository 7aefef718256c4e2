"""Issue 13: a recorded result stands in for a new run when nothing the agent depends on changed,
within the agent's time bucket (leo_sub_agents.reuse_window_seconds; 0 = never); agents only
run, and the commit step records their results with the decision. Issue 17 item 4: an agent
whose verdict depends on the world outside the snapshot is reused only while its fingerprint
of that world is the same."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from leo.api import LeoClient
from leo.domain.handoff_messages import HandoffOptions, HandoffResult
from leo.domain.handoffs import HandoffType
from leo.domain.verdicts import SubAgentResult, Verdict
from tests.support.db import failing_trigger
from tests.support.factories import add_agent, create_sd


def by_code(result: HandoffResult) -> dict[str, SubAgentResult]:
    return {r.code: r for r in result.sub_agents}


def runs(directory: Path) -> int:
    return len(list(directory.iterdir())) if directory.exists() else 0


async def set_window(
    pool: asyncpg.Pool, code: str, seconds: int, fingerprint: list[str] | None = None
) -> None:
    """The bucket width, and what the agent reads: only the SD (so the snapshot's read time is
    not its input), and a world that stays the same unless a fingerprint is given."""
    await pool.execute(
        "UPDATE leo_sub_agents SET reuse_window_seconds = $2, input_parts = '{sd}', "
        "reuse_fingerprint = $3 WHERE code = $1",
        code,
        seconds,
        fingerprint or ["sh", "-c", "echo same world"],
    )


async def set_verdict(pool: asyncpg.Pool, code: str, verdict: str) -> None:
    await pool.execute(
        "UPDATE leo_sub_agents SET metadata = metadata || $2 WHERE code = $1",
        code,
        {"verdict": verdict},
    )


async def rejected_then_retried(
    leo: LeoClient, pool: asyncpg.Pool, tmp_path: Path, *, window: int
) -> tuple[str, str, str, HandoffResult, HandoffResult]:
    """A slow agent and one that FAILs; the failing one is fixed (its own input changes) and the
    handoff is started again."""
    slow = await add_agent(pool, metadata={"seconds": 0.3, "marker_dir": str(tmp_path / "slow")})
    await set_window(pool, slow, window)
    flaky = await add_agent(
        pool, priority=90, metadata={"verdict": "FAIL", "marker_dir": str(tmp_path / "flaky")}
    )
    await set_window(pool, flaky, 3600)
    sd = await create_sd(pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    options = HandoffOptions(extra_sub_agents=[slow, flaky])
    first = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id, options=options)
    assert not first.accepted, "the FAILing agent should have rejected the first attempt"
    await set_verdict(pool, flaky, "PASS")
    second = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id, options=options)
    return sd.id, slow, flaky, first, second


async def test_unchanged_agent_is_reused_and_changed_one_runs_again(
    leo: LeoClient, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    sd_id, slow, flaky, first, second = await rejected_then_retried(
        leo, db_pool, tmp_path, window=3600
    )

    assert second.accepted, second.issues
    agents = by_code(second)
    # The slow agent's input did not change: its first result stands, it did not run again.
    assert runs(tmp_path / "slow") == 1
    assert agents[slow].reused and agents[slow].result_id is not None
    # The fixed agent's input (its catalogue row) changed: it ran again, with its new verdict.
    assert runs(tmp_path / "flaky") == 2
    assert agents[flaky].verdict == Verdict.PASS and not agents[flaky].reused
    rows = await db_pool.fetch(
        "SELECT sub_agent_code, verdict FROM sub_agent_execution_results "
        "WHERE sd_id = $1 AND sub_agent_code = ANY($2) ORDER BY created_at",
        sd_id,
        [slow, flaky],
    )
    # One row per run: the reused result was not recorded a second time.
    assert sorted((r["sub_agent_code"], r["verdict"]) for r in rows) == sorted(
        [(slow, "PASS"), (flaky, "FAIL"), (flaky, "PASS")]
    )
    # The built-in rules are evaluated in the snapshot step and still reported and recorded.
    assert {"VALIDATION", "RISK"} <= set(agents)
    assert not by_code(first)[slow].reused


async def test_zero_window_never_reuses(
    leo: LeoClient, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    _, slow, _, _, second = await rejected_then_retried(leo, db_pool, tmp_path, window=0)

    assert second.accepted, second.issues
    assert runs(tmp_path / "slow") == 2
    assert not by_code(second)[slow].reused


async def test_agent_runs_again_when_the_sd_changed(
    leo: LeoClient, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    slow = await add_agent(db_pool, metadata={"seconds": 0.1, "marker_dir": str(tmp_path / "slow")})
    await set_window(db_pool, slow, 3600)
    flaky = await add_agent(db_pool, priority=90, metadata={"verdict": "FAIL"})
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    options = HandoffOptions(extra_sub_agents=[slow, flaky])
    first = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id, options=options)
    assert not first.accepted
    # What the slow agent reads changed: the SD's scope.
    await db_pool.execute(
        "UPDATE strategic_directives_v2 SET scope = scope || ' (widened)' WHERE id = $1", sd.id
    )
    await set_verdict(db_pool, flaky, "PASS")
    second = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id, options=options)

    assert second.accepted, second.issues
    assert runs(tmp_path / "slow") == 2
    assert not by_code(second)[slow].reused


@pytest.mark.parametrize(
    ("refused_table", "when"),
    [
        ("sub_agent_execution_results", "true"),
        # The snapshot step's dry run of the transition (always rolled back) still passes.
        ("sd_transition_audit", "NEW.request_id NOT LIKE 'preflight:%'"),
    ],
    ids=["results-refused", "decision-record-refused"],
)
async def test_results_and_the_decision_commit_together_or_not_at_all(
    leo: LeoClient, db_pool: asyncpg.Pool, refused_table: str, when: str
) -> None:
    """The commit step records the agents' rows in the transaction of the transition, both
    ways round: while the rows cannot be written, the transition is not applied, and while the
    decision cannot be recorded (not even as a failed attempt), no row is written. Once the
    cause is gone, both are written, once."""
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    # Counts the commit's attempts: a sequence is not rolled back with the failed statement.
    attempts = f"leo_test_attempts_{uuid.uuid4().hex[:12]}"
    await db_pool.execute(f"CREATE SEQUENCE {attempts}")
    async with failing_trigger(
        db_pool,
        table=refused_table,
        event="INSERT",
        column="sd_id",
        sd_id=sd.id,
        sqlstate="23514",
        message=f"{refused_table} rows refused (test)",
        when=f"CASE WHEN ({when}) THEN nextval('{attempts}') > 0 ELSE false END",
    ):
        handle = await leo.start_handoff(HandoffType.LEAD_TO_PLAN, sd.id)
        async with asyncio.timeout(60):
            while await db_pool.fetchval(f"SELECT last_value FROM {attempts}") < 2:
                await asyncio.sleep(0.1)
        # Two attempts failed on one side: nothing of either side was written.
        assert (
            await db_pool.fetchval(
                "SELECT transition_version FROM strategic_directives_v2 WHERE id = $1", sd.id
            )
            == 1
        )
        for table in ("sd_transition_audit", "sd_phase_handoffs", "sub_agent_execution_results"):
            assert (
                await db_pool.fetchval(
                    f"SELECT count(*) FROM {table} WHERE sd_id = $1",
                    sd.id,
                )
                == 0
            ), table
    result = await leo.wait(handle)
    await db_pool.execute(f"DROP SEQUENCE {attempts}")

    assert result.accepted and result.transition_version == 2
    rows = await db_pool.fetch(
        "SELECT sub_agent_code, count(*) AS n FROM sub_agent_execution_results "
        "WHERE sd_id = $1 GROUP BY 1",
        sd.id,
    )
    assert {r["sub_agent_code"]: r["n"] for r in rows} == {"VALIDATION": 1, "RISK": 1}
    audits = await db_pool.fetch("SELECT status FROM sd_transition_audit WHERE sd_id = $1", sd.id)
    assert [a["status"] for a in audits] == ["completed"]


async def test_builtin_rules_run_in_the_snapshot_step_and_dependants_still_wait_for_them(
    leo: LeoClient, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    after_validation = await add_agent(
        db_pool, depends_on=["VALIDATION"], metadata={"marker_dir": str(tmp_path)}
    )
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")

    result = await leo.run_handoff(
        HandoffType.LEAD_TO_PLAN,
        sd.id,
        options=HandoffOptions(extra_sub_agents=[after_validation]),
    )

    assert result.accepted, result.issues
    agents = by_code(result)
    assert agents["VALIDATION"].verdict == Verdict.PASS and agents["VALIDATION"].ran
    assert "RISK" in agents
    assert runs(tmp_path) == 1 and agents[after_validation].verdict == Verdict.PASS
    history = await leo.client.get_workflow_handle(result.workflow_id).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    # One agent activity (the catalogue agent): no activity per rule, and the commit is a
    # local activity.
    assert scheduled == ["run_sub_agent"]
    recorded = await db_pool.fetch(
        "SELECT sub_agent_code FROM sub_agent_execution_results WHERE sd_id = $1", sd.id
    )
    assert sorted(r["sub_agent_code"] for r in recorded) == sorted(
        ["VALIDATION", "RISK", after_validation]
    )


def world_agent_argv(flag: Path) -> list[str]:
    """A command agent whose verdict depends on the world: PASS while `flag` exists."""
    ok = '{"verdict": "PASS", "confidence": 90}'
    fail = '{"verdict": "FAIL", "confidence": 90, "critical_issues": ["no flag"]}'
    return ["sh", "-c", f"if [ -f '{flag}' ]; then echo '{ok}'; else echo '{fail}'; fi"]


async def world_agent(pool: asyncpg.Pool, flag: Path, fingerprint: list[str] | None) -> str:
    code = await add_agent(pool, kind="command", ref=world_agent_argv(flag), priority=90)
    await pool.execute(
        "UPDATE leo_sub_agents SET reuse_window_seconds = 3600, input_parts = '{sd}', "
        "reuse_fingerprint = $2 WHERE code = $1",
        code,
        fingerprint,
    )
    return code


async def test_a_fail_is_not_reused_after_the_world_was_fixed(
    leo: LeoClient, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """Review F4's reproduction: an agent that checks something outside the snapshot, with a
    reuse window. Without a fingerprint it always runs; with one, it is reused while the world
    is the same and runs again once it changed."""
    for fingerprint in (None, ["sh", "-c", f"ls -a '{tmp_path}'"]):
        flag = tmp_path / f"ok-{fingerprint is None}"
        agent = await world_agent(db_pool, flag, fingerprint)
        sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
        options = HandoffOptions(extra_sub_agents=[agent])
        first = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id, options=options)
        assert not first.accepted and by_code(first)[agent].verdict == Verdict.FAIL
        if fingerprint is not None:
            # Nothing changed, in the snapshot or in the world: the FAIL stands, reused.
            same = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id, options=options)
            assert not same.accepted and by_code(same)[agent].reused
        flag.touch()
        fixed = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id, options=options)
        assert fixed.accepted, (fingerprint, fixed.issues)
        assert by_code(fixed)[agent].verdict == Verdict.PASS
        assert not by_code(fixed)[agent].reused


async def test_a_pass_is_not_reused_after_a_regression(
    leo: LeoClient, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    flag = tmp_path / "ok"
    flag.touch()
    agent = await world_agent(db_pool, flag, None)
    blocker = await add_agent(db_pool, priority=90, metadata={"verdict": "FAIL"})
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    options = HandoffOptions(extra_sub_agents=[agent, blocker])
    first = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id, options=options)
    assert not first.accepted and by_code(first)[agent].verdict == Verdict.PASS
    # The world regresses, and the other agent is fixed: the PASS must not carry the handoff.
    flag.unlink()
    await set_verdict(db_pool, blocker, "PASS")
    second = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sd.id, options=options)

    assert not second.accepted
    assert by_code(second)[agent].verdict == Verdict.FAIL and not by_code(second)[agent].reused
