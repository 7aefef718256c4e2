"""Issue 19 (R8): a transition applies in one data-modifying statement; every other case goes to
the step-by-step path, and both paths give the same outcome.

Which path ran is read from PostgreSQL's own function counters (`pg_stat_get_xact_function_calls`,
with `track_functions = 'pl'` for the transaction), as the difference across one call: the
counter also holds calls of earlier transactions that are not yet flushed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from asyncpg.pool import PoolConnectionProxy

from tests.support.contracts import CONTRACTS, Contract
from tests.support.db import (
    audit_rows,
    call,
    claim,
    context,
    failing_trigger,
    handoff_rows,
    new_session_id,
    prd_row,
    sd_row,
    story_rows,
)
from tests.support.factories import SdFixture, create_sd

EVERY_HANDOFF = [pytest.param(c, id=c.handoff) for c in CONTRACTS.values()]


def steps_function(handoff: str) -> str:
    return f"leo_{handoff.lower().replace('-', '_')}_steps(text,text,text,jsonb)"


COUNTED = (
    "leo_transition_begin(text,text,text,text,jsonb)",
    "leo_transition_complete(jsonb,uuid,text,text,jsonb)",
    *(f"leo_{h.lower().replace('-', '_')}_steps(text,text,text,jsonb)" for h in CONTRACTS),
)


class Counts:
    """Calls of the step-by-step functions made through one connection, inside `counted`."""

    def __init__(self, conn: PoolConnectionProxy) -> None:
        self.conn = conn
        self.before: dict[str, int] = {}
        self.after: dict[str, int] = {}

    async def read(self) -> dict[str, int]:
        rows = await self.conn.fetch(
            "SELECT f, coalesce(pg_stat_get_xact_function_calls(f::regprocedure), 0) AS n "
            "FROM unnest($1::text[]) f",
            list(COUNTED),
        )
        return {r["f"]: r["n"] for r in rows}

    def __getitem__(self, signature: str) -> int:
        return self.after[signature] - self.before[signature]


@asynccontextmanager
async def counted(pool: asyncpg.Pool) -> AsyncIterator[tuple[PoolConnectionProxy, Counts]]:
    """A connection in a transaction, and the calls made between entering and leaving."""
    async with pool.acquire() as conn, conn.transaction():
        try:
            await conn.execute("SET LOCAL track_functions = 'pl'")
        except asyncpg.InsufficientPrivilegeError:
            pytest.skip("setting track_functions needs a superuser")
        counts = Counts(conn)
        counts.before = await counts.read()
        yield conn, counts
        counts.after = await counts.read()


async def ready_sd(pool: asyncpg.Pool, contract: Contract) -> tuple[SdFixture, str | None]:
    """An SD ready for the handoff, with the contract's stories (and a claim held by the
    caller where the handoff releases claims)."""
    sd = await create_sd(pool, ready_for=contract.handoff, **contract.fault_rows)
    session = None
    if contract.fault_under_claim:
        session = new_session_id()
        assert (await claim(pool, sd.id, session))["success"] is True
    return sd, session


@pytest.mark.parametrize("contract", EVERY_HANDOFF)
async def test_a_transition_applies_in_one_statement_without_the_step_by_step_path(
    db_pool: asyncpg.Pool, contract: Contract
) -> None:
    sd, session = await ready_sd(db_pool, contract)
    async with counted(db_pool) as (conn, counts):
        result = await call(conn, contract.handoff, sd.id, context(), session_id=session)
    assert result["success"] is True, result
    # Neither the step-by-step path nor any of its helpers ran.
    assert {f: counts[f] for f in COUNTED} == dict.fromkeys(COUNTED, 0)


@pytest.mark.parametrize("contract", EVERY_HANDOFF)
async def test_a_refusal_is_answered_by_the_step_by_step_path(
    db_pool: asyncpg.Pool, contract: Contract
) -> None:
    sd = await create_sd(db_pool, ready_for=contract.handoff)
    async with counted(db_pool) as (conn, counts):
        result = await call(conn, contract.handoff, sd.id, context(expected_version=7))
    assert result["code"] == "VERSION_CONFLICT", result
    assert counts[steps_function(contract.handoff)] == 1
    assert await audit_rows(db_pool, sd.id) == []


def placeholders(sd: SdFixture, result: dict[str, Any], session: str | None) -> dict[str, str]:
    names = {sd.id: "<sd>", sd.sd_key: "<sd_key>", result["request_id"]: "<request>"}
    if session:
        names[session] = "<session>"
    names[result["audit_id"]] = "<audit>"
    names[result["handoff_id"]] = "<handoff>"
    if sd.prd_id:
        names[sd.prd_id] = "<prd>"
    return names


def normalised(value: Any, names: dict[str, str]) -> Any:
    """`value` with the ids of one SD's transition replaced by placeholders."""
    if isinstance(value, dict):
        return {k: normalised(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [normalised(v, names) for v in value]
    if isinstance(value, uuid.UUID):
        value = str(value)
    if isinstance(value, str):
        return names.get(value, value)
    return value


UNSTABLE = {"id", "title", "created_at", "updated_at", "completed_at", "accepted_at", "started_at"}


async def outcome(
    pool: asyncpg.Pool, sd: SdFixture, result: dict[str, Any], session: str | None
) -> dict[str, Any]:
    """Everything the transition wrote, with ids and times taken out."""
    names = placeholders(sd, result, session)

    def clean(row: dict[str, Any]) -> Any:
        return normalised({k: v for k, v in row.items() if k not in UNSTABLE}, names)

    sd_after = clean(await sd_row(pool, sd.id))
    sd_after["completion_date"] = sd_after["completion_date"] is not None
    stories = await story_rows(pool, sd.id)
    return {
        "result": normalised(result, names),
        "sd": sd_after,
        "prd": clean(await prd_row(pool, sd.prd_id)) if sd.prd_id else None,
        "stories": [clean(stories[key]) | {"story_key": None} for key in sorted(stories)],
        "handoffs": [clean(row) for row in await handoff_rows(pool, sd.id)],
        "audits": [clean(row) for row in await audit_rows(pool, sd.id)],
    }


@pytest.mark.parametrize("contract", EVERY_HANDOFF)
async def test_both_paths_give_the_same_outcome(db_pool: asyncpg.Pool, contract: Contract) -> None:
    # The same transition on two twin SDs: one applied in one statement; on the other the
    # statement meets a fault that happens once only (the first write of its SD row), so the
    # step-by-step path applies it.
    fast_sd, fast_session = await ready_sd(db_pool, contract)
    slow_sd, slow_session = await ready_sd(db_pool, contract)
    fast = await call(db_pool, contract.handoff, fast_sd.id, context(), session_id=fast_session)

    sequence = f"leo_test_once_{uuid.uuid4().hex[:16]}"
    await db_pool.execute(f"CREATE SEQUENCE {sequence}")
    try:
        async with (
            failing_trigger(
                db_pool,
                table="strategic_directives_v2",
                event="UPDATE",
                column="id",
                sd_id=slow_sd.id,
                sqlstate="55000",
                message="a fault that happens once",
                when=f"nextval('{sequence}') = 1",
            ),
            counted(db_pool) as (conn, counts),
        ):
            slow = await call(
                conn, contract.handoff, slow_sd.id, context(), session_id=slow_session
            )
        assert counts[steps_function(contract.handoff)] == 1
        assert await db_pool.fetchval(f"SELECT last_value FROM {sequence}") == 2
    finally:
        await db_pool.execute(f"DROP SEQUENCE {sequence}")

    assert fast["success"] is True, fast
    assert slow["success"] is True, slow
    fast_outcome = await outcome(db_pool, fast_sd, fast, fast_session)
    slow_outcome = await outcome(db_pool, slow_sd, slow, slow_session)
    for key in ("result", "sd", "prd", "stories", "handoffs", "audits"):
        assert fast_outcome[key] == slow_outcome[key], key
    if contract.fault_under_claim:
        for session in (fast_session, slow_session):
            released = await db_pool.fetchval(
                "SELECT release_reason FROM claude_sessions WHERE session_id = $1", session
            )
            assert released == "completed"


async def test_a_claim_taken_while_the_transition_waits_is_seen(db_pool: asyncpg.Pool) -> None:
    # Another session claims the SD (claim_sd locks and updates the SD row, and takes no
    # advisory lock) and commits while EXEC-TO-PLAN waits for that row. The statement's
    # snapshot predates the claim; it must not apply on it. The step-by-step path sees the
    # committed claim and refuses.
    sd = await create_sd(db_pool, ready_for="EXEC-TO-PLAN", stories=[{}, {}])
    other = new_session_id()
    async with db_pool.acquire() as claimer, counted(db_pool) as (caller, counts):
        tx = claimer.transaction()
        await tx.start()
        try:
            assert (await claim(claimer, sd.id, other))["success"] is True
            pending = asyncio.create_task(call(caller, "EXEC-TO-PLAN", sd.id, context()))
            pid = caller.get_server_pid()
            async with asyncio.timeout(10):
                while not await db_pool.fetchval(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
                ):
                    await asyncio.sleep(0.01)
        finally:
            await tx.commit()
        result = await asyncio.wait_for(pending, 10)

    assert result["code"] == "CLAIMED_BY_OTHER_SESSION", result
    assert result["claimed_by"] == other
    assert counts[steps_function("EXEC-TO-PLAN")] == 1
    assert await audit_rows(db_pool, sd.id) == []
    assert await handoff_rows(db_pool, sd.id) == []
    row = await sd_row(db_pool, sd.id)
    assert (row["current_phase"], row["transition_version"]) == ("EXEC", 1)
