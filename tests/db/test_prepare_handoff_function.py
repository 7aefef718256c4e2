"""fn_prepare_handoff (issue 19, R2): the snapshot step's reads in one call, with a read-only
precheck that refuses exactly as the transition would, and writes nothing; the snapshot step
(activities/handoff_state.py) makes one round trip, two when an agent may reuse a result."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.decision import LoadSnapshotInput
from activities.handoff_state import read_handoff_state
from db.snapshots import read_accepted_handoff, read_prepared_rows
from leo.domain.handoffs import HandoffType
from tests.support.contracts import CONTRACTS, Contract
from tests.support.db import call, claim, context, new_session_id, snapshot
from tests.support.factories import create_sd

EVERY_WRONG_PHASE = [
    pytest.param(c, status, phase, id=f"{c.handoff}-{status}-{phase}")
    for c in CONTRACTS.values()
    for status, phase in c.wrong_phases
]
EVERY_HANDOFF = [pytest.param(c, id=c.handoff) for c in CONTRACTS.values()]


async def prepare(
    conn: asyncpg.Pool | asyncpg.Connection,
    handoff: str,
    sd_ref: str,
    session_id: str | None = None,
    keys: list[str] | None = None,
) -> dict[str, Any]:
    raw = await conn.fetchval(
        "SELECT fn_prepare_handoff(p_handoff_type => $1, p_sd_id => $2, p_session_id => $3, "
        "p_evidence_hours => 24, p_idempotency_keys => $4)",
        handoff,
        sd_ref,
        session_id,
        keys or [],
    )
    assert isinstance(raw, dict)
    return dict(raw)


async def assert_same_refusal(
    pool: asyncpg.Pool, handoff: str, sd_ref: str, *, session_id: str | None = None
) -> dict[str, Any]:
    """The precheck's refusal is the one the transition gives, and neither wrote anything."""
    precheck: dict[str, Any] | None = (await prepare(pool, handoff, sd_ref, session_id))["refusal"]
    assert precheck is not None
    refused = await call(
        pool, handoff, sd_ref, context(expected_version=None), session_id=session_id
    )
    assert refused["success"] is False
    if refused["code"] == "CLAIMED_BY_OTHER_SESSION":
        # The message counts the claim's heartbeat age in seconds, which may tick in between.
        assert (precheck["code"], precheck["claimed_by"]) == (
            "CLAIMED_BY_OTHER_SESSION",
            refused["claimed_by"],
        )
    else:
        assert precheck == refused
    return precheck


@pytest.mark.parametrize(("contract", "status", "phase"), EVERY_WRONG_PHASE)
async def test_the_precheck_refuses_a_wrong_phase_as_the_transition_does(
    db_pool: asyncpg.Pool, contract: Contract, status: str, phase: str
) -> None:
    sd = await create_sd(db_pool, status=status, phase=phase, **contract.wrong_phase_rows)
    before = await snapshot(db_pool, sd.id)
    refusal = await assert_same_refusal(db_pool, contract.handoff, sd.id)
    assert refusal["code"] == "INVALID_PHASE"
    assert await snapshot(db_pool, sd.id) == before


@pytest.mark.parametrize("handoff", ["PLAN-TO-EXEC", "EXEC-TO-PLAN"])
async def test_the_precheck_refuses_a_closed_prd_as_the_transition_does(
    db_pool: asyncpg.Pool, handoff: str
) -> None:
    sd = await create_sd(db_pool, ready_for=handoff)
    await db_pool.execute(
        "UPDATE product_requirements_v2 SET status = 'on_hold' WHERE id = $1", sd.prd_id
    )
    refusal = await assert_same_refusal(db_pool, handoff, sd.sd_key)
    assert refusal["code"] == "INVALID_PRD_STATUS"


@pytest.mark.parametrize("contract", EVERY_HANDOFF)
async def test_the_precheck_refuses_a_foreign_claim_and_lets_the_holder_through(
    db_pool: asyncpg.Pool, contract: Contract
) -> None:
    sd = await create_sd(db_pool, ready_for=contract.handoff)
    holder = new_session_id()
    assert (await claim(db_pool, sd.id, holder))["success"] is True
    for caller in (new_session_id(), None):
        await assert_same_refusal(db_pool, contract.handoff, sd.id, session_id=caller)
    assert (await prepare(db_pool, contract.handoff, sd.id, holder))["refusal"] is None


async def test_the_precheck_refuses_an_unknown_sd_and_bad_arguments(db_pool: asyncpg.Pool) -> None:
    unknown = await assert_same_refusal(db_pool, "LEAD-TO-PLAN", "SD-NOBODY-HAS-THIS-ID")
    assert unknown["code"] == "SD_NOT_FOUND"
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    blank = await assert_same_refusal(db_pool, "LEAD-TO-PLAN", sd.id, session_id="   ")
    assert blank["code"] == "INVALID_INPUT"


@pytest.mark.parametrize("contract", EVERY_HANDOFF)
async def test_a_ready_sd_passes_the_precheck_and_nothing_is_written(
    db_pool: asyncpg.Pool, contract: Contract
) -> None:
    sd = await create_sd(db_pool, ready_for=contract.handoff, **contract.fault_rows)
    before = await snapshot(db_pool, sd.id)
    audits = await db_pool.fetchval("SELECT count(*) FROM sd_transition_audit")
    prepared = await prepare(db_pool, contract.handoff, sd.sd_key)
    assert prepared["refusal"] is None
    assert prepared["accepted"] is None
    assert prepared["sd"]["id"] == sd.id
    assert [s["story_key"] for s in prepared["stories"]] == sorted(sd.story_keys)
    assert await snapshot(db_pool, sd.id) == before
    assert await db_pool.fetchval("SELECT count(*) FROM sd_transition_audit") == audits


async def test_a_transition_in_flight_does_not_refuse_the_precheck(db_pool: asyncpg.Pool) -> None:
    # The dry run it replaces met CONCURRENT_LOCK here and was retried; the precheck takes no
    # lock, so a wrong phase is refused at once and a ready SD goes on to its agents.
    ready = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    wrong = await create_sd(db_pool, ready_for="PLAN-TO-EXEC")
    async with db_pool.acquire() as holder, holder.transaction():
        for sd in (ready, wrong):
            await holder.execute("SELECT pg_advisory_xact_lock(leo_sd_lock_key($1))", sd.id)
        assert (await prepare(db_pool, "LEAD-TO-PLAN", ready.id))["refusal"] is None
        refusal = (await prepare(db_pool, "LEAD-TO-PLAN", wrong.id))["refusal"]
        assert refusal["code"] == "INVALID_PHASE"


async def test_the_rows_come_from_one_snapshot_with_the_recorded_results(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(
        db_pool,
        ready_for="EXEC-TO-PLAN",
        stories=[{"status": "in_progress"}, {"status": "blocked"}],
    )
    key = f"idmp_test_{sd.id}"
    recorded = await db_pool.fetchval(
        "SELECT fn_record_sub_agent_result(p_idempotency_key => $1, p_sd_id => $2, "
        "p_sub_agent_code => 'TESTING', p_sub_agent_name => 'Testing', p_phase => 'EXEC_IMPL', "
        "p_verdict => 'PASS', p_confidence => 90, p_critical_issues => '[]', "
        "p_warnings => '[]', p_recommendations => '[]', p_detailed_analysis => 'ok', "
        "p_execution_time => 1.5, p_justification => NULL, p_conditions => NULL, "
        "p_metadata => '{}')",
        key,
        sd.id,
    )
    assert recorded is not None
    async with db_pool.acquire() as conn:
        prepared = await read_prepared_rows(
            conn,
            "EXEC-TO-PLAN",
            sd.sd_key,
            session_id=None,
            evidence_max_age_hours=24,
            idempotency_keys=[key, "idmp_nobody"],
        )
    assert prepared is not None and prepared.rows is not None
    assert prepared.refusal is None
    assert set(prepared.recorded) == {key}
    row = prepared.recorded[key]
    assert (row["verdict"], row["confidence"], row["execution_time"]) == ("PASS", 90, 1.5)
    assert [e["sub_agent_code"] for e in prepared.rows.evidence] == ["TESTING"]
    assert {s["status"] for s in prepared.rows.stories} == {"in_progress", "blocked"}
    assert prepared.rows.sd["transition_version"] == 1
    assert prepared.rows.now.tzinfo is not None
    assert prepared.rows.evidence[0]["created_at"] <= prepared.rows.now
    assert "VALIDATION" in prepared.rows.catalogue


async def test_an_accepted_record_comes_back_and_no_precheck_runs(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    workflow_id = f"LEAD-TO-PLAN:{sd.id}"
    ctx = context(f"{workflow_id}/run-1", metadata={"workflow_id": workflow_id, "run_id": "run-1"})
    assert (await call(db_pool, "LEAD-TO-PLAN", sd.id, ctx))["success"] is True
    prepared = await prepare(db_pool, "LEAD-TO-PLAN", sd.sd_key)
    # The SD moved on (a dry run now would refuse INVALID_PHASE); the accepted record wins.
    assert prepared["refusal"] is None
    assert prepared["accepted"]["request_id"] == ctx["request_id"]
    assert prepared["accepted"]["result"]["success"] is True


async def in_activity(fn: Any, *args: Any) -> Any:
    """`fn` as the snapshot step runs it: inside an activity's context (the SDK's test
    environment), where metrics and activity info exist."""
    return await ActivityEnvironment().run(fn, *args)


async def snapshot_step(
    pool: asyncpg.Pool, request: LoadSnapshotInput, attempt: str
) -> tuple[Any, list[str]]:
    """The snapshot step's result and every statement it sent (asyncpg's own query logger),
    on a connection that ran it once before: asyncpg's one-time type lookups are not the
    step's."""
    queries: list[str] = []

    def log(record: Any) -> None:
        queries.append(record.query)

    async with pool.acquire() as conn:
        await in_activity(read_handoff_state, conn, request, attempt)
        conn.add_query_logger(log)
        try:
            return await in_activity(read_handoff_state, conn, request, attempt), queries
        finally:
            conn.remove_query_logger(log)


async def test_the_snapshot_step_is_one_round_trip(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    request = LoadSnapshotInput(handoff_type=HandoffType.LEAD_TO_PLAN, sd_id=sd.id)
    prepared, queries = await snapshot_step(db_pool, request, "attempt-1")
    # The accepted lookup, the precheck, the snapshot and the recorded results: one statement
    # (it was 17 round trips before issue 19, a dry run that wrote and rolled back among them).
    assert len(queries) == 1, queries
    assert "fn_prepare_handoff" in queries[0]
    assert set(prepared.keys) == {"VALIDATION", "RISK"}
    assert set(prepared.ready) == {"VALIDATION", "RISK"}  # built-in rules, evaluated in place


async def test_a_refused_handoff_is_refused_in_the_same_round_trip(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for="PLAN-TO-EXEC")
    request = LoadSnapshotInput(handoff_type=HandoffType.LEAD_TO_PLAN, sd_id=sd.sd_key)
    queries: list[str] = []

    def log(record: Any) -> None:
        queries.append(record.query)

    async with db_pool.acquire() as conn:
        conn.add_query_logger(log)
        try:
            with pytest.raises(ApplicationError) as refused:
                await in_activity(read_handoff_state, conn, request, "attempt-1")
        finally:
            conn.remove_query_logger(log)
    assert refused.value.type == "INVALID_PHASE"
    assert refused.value.non_retryable
    assert len(queries) == 1, queries


async def test_an_agent_that_may_reuse_a_result_costs_one_more_round_trip(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    request = LoadSnapshotInput(handoff_type=HandoffType.LEAD_TO_PLAN, sd_id=sd.id)
    window = await db_pool.fetchval(
        "SELECT reuse_window_seconds FROM leo_sub_agents WHERE code = 'RISK'"
    )
    await db_pool.execute(
        "UPDATE leo_sub_agents SET reuse_window_seconds = 3600 WHERE code = 'RISK'"
    )
    try:
        first, queries = await snapshot_step(db_pool, request, "attempt-1")
        # RISK has a reuse key and no result of this attempt: its reusable result is asked for.
        assert len(queries) == 2, queries
        assert "fn_prepare_handoff" in queries[0]
        assert first.keys["RISK"].reuse_key is not None

        # Once this attempt's results are recorded, they come with the snapshot's read.
        for code, key in first.keys.items():
            result = first.ready[code]
            await db_pool.fetchval(
                "SELECT fn_record_sub_agent_result(p_idempotency_key => $1, p_sd_id => $2, "
                "p_sub_agent_code => $3, p_sub_agent_name => $4, p_phase => 'LEAD_PRE_APPROVAL', "
                "p_verdict => $5, p_confidence => $6, p_critical_issues => '[]', "
                "p_warnings => '[]', p_recommendations => '[]', p_detailed_analysis => '', "
                "p_execution_time => 0, p_justification => NULL, p_conditions => NULL, "
                "p_metadata => '{}')",
                key.idempotency_key,
                sd.id,
                code,
                result.name,
                result.verdict.value,
                result.confidence,
            )
        again, queries = await snapshot_step(db_pool, request, "attempt-1")
        assert len(queries) == 1, queries
        assert {code: r.result_id is not None for code, r in again.ready.items()} == {
            "VALIDATION": True,
            "RISK": True,
        }
    finally:
        await db_pool.execute(
            "UPDATE leo_sub_agents SET reuse_window_seconds = $1 WHERE code = 'RISK'", window
        )


async def test_the_accepted_record_is_the_one_the_step_by_step_lookup_finds(
    db_pool: asyncpg.Pool,
) -> None:
    # fn_prepare_handoff repeats ACCEPTED_HANDOFF_SQL's conditions; they must agree: a record
    # made by hand (no gates, no workflow) is no accepted handoff, a gated one is.
    by_hand = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    assert (await call(db_pool, "LEAD-TO-PLAN", by_hand.id, context()))["success"] is True
    gated = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    workflow_id = f"LEAD-TO-PLAN:{gated.id}"
    ctx = context(f"{workflow_id}/run-1", metadata={"workflow_id": workflow_id, "run_id": "run-1"})
    assert (await call(db_pool, "LEAD-TO-PLAN", gated.id, ctx))["success"] is True
    async with db_pool.acquire() as conn:
        for sd, found in ((by_hand, False), (gated, True)):
            lookup = await read_accepted_handoff(conn, sd.sd_key, "LEAD-TO-PLAN")
            prepared = await read_prepared_rows(
                conn, "LEAD-TO-PLAN", sd.sd_key, session_id=None, evidence_max_age_hours=24
            )
            assert prepared is not None
            assert (lookup is not None, prepared.accepted is not None) == (found, found)
            if lookup is not None:
                assert prepared.accepted == dict(lookup)
