"""fn_commit_handoff (issue 17 item 2, issue 19): both or neither, for refusals too, and decided once.

- A verdict the SD's state refuses at commit time (VERSION_CONFLICT, CLAIMED_BY_OTHER_SESSION,
  INVALID_PHASE) leaves its failed audit row, with LEO's error record, in the transaction that
  writes the result rows; a retried CONCURRENT_LOCK writes neither.
- A rejection passes the same version, phase and claim checks as a transition (F10).
- The first verdict committed under a request id is the one that counts: a repeat returns it
  and writes nothing, whatever verdict the repeat carries.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.support.db import claim, context, new_request_id, new_session_id
from tests.support.factories import create_sd

REJECTED: dict[str, Any] = {"passed": False, "normalized_score": 40, "failed_gate": "GATE_X"}


def result_row(code: str, key: str) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "reuse_key": f"r-{key}",
        "code": code,
        "name": code,
        "verdict": "PASS",
        "confidence": 90,
    }


async def commit(
    pool: asyncpg.Pool,
    sd_id: str,
    *,
    accepted: bool,
    ctx: dict[str, Any],
    results: list[dict[str, Any]] | None = None,
    session_id: str | None = None,
) -> dict[str, Any]:
    raw = await pool.fetchval(
        "SELECT fn_commit_handoff(p_handoff_type => 'LEAD-TO-PLAN', p_sd_id => $1, "
        "p_accepted => $2, p_phase => 'LEAD_PRE_APPROVAL', p_sub_agent_results => $3, "
        "p_session_id => $4, p_transition_context => $5)",
        sd_id,
        accepted,
        results or [],
        session_id,
        ctx,
    )
    assert isinstance(raw, dict), raw
    return raw


async def counts(pool: asyncpg.Pool, sd_id: str) -> dict[str, int]:
    return {
        table: await pool.fetchval(f"SELECT count(*) FROM {table} WHERE sd_id = $1", sd_id)
        for table in ("sd_transition_audit", "sd_phase_handoffs", "sub_agent_execution_results")
    }


async def moved_on(pool: asyncpg.Pool, sd_id: str) -> None:
    await pool.execute(
        "UPDATE strategic_directives_v2 SET transition_version = transition_version + 1 "
        "WHERE id = $1",
        sd_id,
    )


@pytest.mark.parametrize("accepted", [True, False], ids=["accept", "reject"])
@pytest.mark.parametrize("cause", ["VERSION_CONFLICT", "CLAIMED_BY_OTHER_SESSION", "INVALID_PHASE"])
async def test_a_refused_verdict_leaves_its_failed_audit_row_with_the_result_rows(
    db_pool: asyncpg.Pool, cause: str, accepted: bool
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    if cause == "VERSION_CONFLICT":
        await moved_on(db_pool, sd.id)
    elif cause == "CLAIMED_BY_OTHER_SESSION":
        assert (await claim(db_pool, sd.id, new_session_id()))["success"]
    else:
        await db_pool.execute(
            "UPDATE strategic_directives_v2 SET current_phase = 'EXEC', status = 'active' "
            "WHERE id = $1",
            sd.id,
        )
    request_id = new_request_id()
    ctx = context(request_id) if accepted else context(request_id, gate_summary=REJECTED)

    refused = await commit(
        db_pool,
        sd.id,
        accepted=accepted,
        ctx=ctx,
        results=[result_row("X", f"k-{request_id}")],
        session_id=new_session_id(),
    )

    assert refused["success"] is False and refused["code"] == cause
    assert refused["decision"] == "refused"
    audit = await db_pool.fetchrow(
        "SELECT id::text AS id, status, request_id, error_details, result "
        "FROM sd_transition_audit WHERE sd_id = $1",
        sd.id,
    )
    assert audit is not None, "the refusal left no audit row"
    assert (audit["status"], audit["request_id"]) == ("failed", request_id)
    details = audit["error_details"]
    assert details["error_code"] == cause
    assert details["verdict"] == ("accepted" if accepted else "rejected")
    assert details["failed_step"] == "precondition" and details["recovery_action"]
    assert refused["audit_id"] == audit["id"]
    # Both: the agents' rows are committed with the refusal's record; no handoff row.
    assert await counts(db_pool, sd.id) == {
        "sd_transition_audit": 1,
        "sd_phase_handoffs": 0,
        "sub_agent_execution_results": 1,
    }

    # A repeat of the request id returns the refusal and writes nothing.
    again = await commit(
        db_pool,
        sd.id,
        accepted=not accepted,
        ctx=ctx,
        results=[result_row("Y", f"k2-{request_id}")],
    )
    assert again["code"] == cause and again["idempotent_hit"] is True
    assert (await counts(db_pool, sd.id))["sub_agent_execution_results"] == 1


async def test_a_concurrent_lock_writes_neither_results_nor_audit(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    async with db_pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT pg_advisory_xact_lock(leo_sd_lock_key($1))", sd.id)
        for accepted in (True, False):
            refused = await commit(
                db_pool,
                sd.id,
                accepted=accepted,
                ctx=context() if accepted else context(gate_summary=REJECTED),
                results=[result_row("X", f"k-{new_request_id()}")],
            )
            assert refused["code"] == "CONCURRENT_LOCK"
    assert await counts(db_pool, sd.id) == {
        "sd_transition_audit": 0,
        "sd_phase_handoffs": 0,
        "sub_agent_execution_results": 0,
    }


@pytest.mark.parametrize("first", [True, False], ids=["accepted-first", "rejected-first"])
async def test_the_first_verdict_committed_under_a_request_id_is_the_one_that_counts(
    db_pool: asyncpg.Pool, first: bool
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    ctx = context()
    first_ctx = {**ctx, "gate_summary": REJECTED} if not first else ctx
    done = await commit(
        db_pool, sd.id, accepted=first, ctx=first_ctx, results=[result_row("X", new_request_id())]
    )
    assert done["success"] and done["decision"] == ("accepted" if first else "rejected")
    before = await counts(db_pool, sd.id)
    version = await db_pool.fetchval(
        "SELECT transition_version FROM strategic_directives_v2 WHERE id = $1", sd.id
    )

    # The gates said the other thing this time (a plugin gate that reads the clock).
    other_ctx = {**ctx, "gate_summary": REJECTED} if first else ctx
    repeat = await commit(
        db_pool,
        sd.id,
        accepted=not first,
        ctx=other_ctx,
        results=[result_row("Y", new_request_id())],
    )

    assert repeat["success"] and repeat["idempotent_hit"] is True
    assert repeat["decision"] == ("accepted" if first else "rejected")
    assert repeat["gate_summary"]["passed"] is first
    assert await counts(db_pool, sd.id) == before
    assert (
        await db_pool.fetchval(
            "SELECT transition_version FROM strategic_directives_v2 WHERE id = $1", sd.id
        )
        == version
    )


async def test_a_rejection_of_the_version_the_sd_had_is_still_recorded(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    session = new_session_id()
    assert (await claim(db_pool, sd.id, session))["success"]

    recorded = await commit(
        db_pool,
        sd.id,
        accepted=False,
        ctx=context(gate_summary=REJECTED, expected_version=1),
        session_id=session,
    )

    assert recorded["success"] and recorded["decision"] == "rejected"
    assert (await counts(db_pool, sd.id))["sd_phase_handoffs"] == 1
