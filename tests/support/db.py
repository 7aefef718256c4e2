"""Shared helpers for the SQL function tests: raw calls, row snapshots and fault injection."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from tests.support.factories import SdFixture

# What runs a query: the pool, a connection, or a connection acquired from the pool.
Db = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy

# The gate summary every happy path sends; validation_score and validation_details come from it.
GATE_SUMMARY: dict[str, Any] = {
    "passed": True,
    "normalized_score": 87.5,
    "threshold": 85,
    "sd_type": "feature",
    "gate_results": [{"gate": "GATE_PRD_EXISTS", "passed": True, "score": 87.5}],
}

# The codes a refusal may carry; every one of them means "nothing was written".
REFUSAL_CODES = {
    "SD_NOT_FOUND",
    "CONCURRENT_LOCK",
    "VERSION_CONFLICT",
    "INVALID_PHASE",
    "CLAIMED_BY_OTHER_SESSION",
    "INVALID_INPUT",
    "INVALID_PRD_STATUS",
}


# "Use the fixture's SD / a fresh, well-formed context": None means SQL NULL, a case to test.
DEFAULT: Any = object()


def function_name(handoff: str) -> str:
    # Built from our own handoff constants only, never from test input.
    return f"fn_atomic_{handoff.lower().replace('-', '_')}_transition"


def transition_type(handoff: str) -> str:
    return handoff.replace("-", "_")


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


def new_session_id() -> str:
    return f"session_{uuid.uuid4().hex[:8]}_tty0_{uuid.uuid4().int % 100000}"


def context(
    request_id: str | None = None,
    *,
    expected_version: int | None = 1,
    gate_summary: dict[str, Any] | None = GATE_SUMMARY,
    **extra: Any,
) -> dict[str, Any]:
    ctx: dict[str, Any] = {"request_id": request_id or new_request_id(), **extra}
    if expected_version is not None:
        ctx["expected_version"] = expected_version
    if gate_summary is not None:
        ctx["gate_summary"] = gate_summary
    return ctx


async def call(
    conn: Db,
    handoff: str,
    sd_id: str | None,
    ctx: Any,
    *,
    prd_id: str | None = None,
    session_id: str | None = None,
) -> dict[str, Any]:
    """Call a transition function by named arguments, the way any PostgreSQL client would.

    `ctx` goes through the pool's jsonb codec as is, so tests can pass NULL, arrays or strings.
    """
    result = await conn.fetchval(
        f"SELECT {function_name(handoff)}(p_sd_id => $1, p_prd_id => $2, "
        "p_session_id => $3, p_transition_context => $4)",
        sd_id,
        prd_id,
        session_id,
        ctx,
    )
    assert isinstance(result, dict), result
    return result


async def call_raw(
    conn: Db,
    handoff: str,
    sd_id: str | None,
    ctx_text: str,
    *,
    prd_id: str | None = None,
    session_id: str | None = None,
) -> Any:
    """Like `call`, but the context is JSON text cast by the server (JSON null, bad syntax)."""
    return await conn.fetchval(
        f"SELECT {function_name(handoff)}(p_sd_id => $1, p_prd_id => $2, "
        "p_session_id => $3, p_transition_context => $4::text::jsonb)",
        sd_id,
        prd_id,
        session_id,
        ctx_text,
    )


async def claim(conn: Db, sd_id: str, session_id: str) -> dict[str, Any]:
    result = await conn.fetchval(
        "SELECT claim_sd(p_sd_id => $1, p_session_id => $2)", sd_id, session_id
    )
    assert isinstance(result, dict)
    return result


async def fetch_one(conn: Db, sql: str, *args: Any) -> asyncpg.Record:
    """The row `sql` must return; fails the test, naming the query, when there is none."""
    row = await conn.fetchrow(sql, *args)
    assert row is not None, f"no row for: {sql}"
    return row


async def sd_row(conn: Db, sd_id: str) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT * FROM strategic_directives_v2 WHERE id = $1", sd_id)
    assert row is not None
    return dict(row)


async def prd_row(conn: Db, prd_id: str) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT * FROM product_requirements_v2 WHERE id = $1", prd_id)
    assert row is not None
    return dict(row)


async def story_rows(conn: Db, sd_id: str) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM user_stories WHERE sd_id = $1", sd_id)
    return {row["story_key"]: dict(row) for row in rows}


async def audit_rows(conn: Db, sd_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM sd_transition_audit WHERE sd_id = $1 ORDER BY started_at, id", sd_id
    )
    return [dict(row) for row in rows]


async def handoff_rows(conn: Db, sd_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM sd_phase_handoffs WHERE sd_id = $1 ORDER BY created_at, id", sd_id
    )
    return [dict(row) for row in rows]


@dataclass
class Snapshot:
    """Every row a transition of one SD can touch, for before/after comparisons."""

    sd: dict[str, Any]
    prd: list[dict[str, Any]]
    stories: dict[str, dict[str, Any]]
    handoffs: list[dict[str, Any]]
    claims: list[dict[str, Any]]
    audits: list[dict[str, Any]] = field(compare=False)

    def without_audits(self) -> tuple[Any, ...]:
        return (self.sd, self.prd, self.stories, self.handoffs, self.claims)


async def snapshot(conn: Db, sd_id: str) -> Snapshot:
    prd = await conn.fetch("SELECT * FROM product_requirements_v2 WHERE sd_id = $1", sd_id)
    claims = await conn.fetch(
        "SELECT * FROM claude_sessions WHERE sd_id = $1 ORDER BY session_id", sd_id
    )
    return Snapshot(
        sd=await sd_row(conn, sd_id),
        prd=[dict(r) for r in prd],
        stories=await story_rows(conn, sd_id),
        handoffs=await handoff_rows(conn, sd_id),
        claims=[dict(r) for r in claims],
        audits=await audit_rows(conn, sd_id),
    )


@asynccontextmanager
async def failing_trigger(
    conn: Db,
    *,
    table: str,
    event: str,
    column: str,
    sd_id: str,
    sqlstate: str,
    message: str,
    when: str = "true",
) -> AsyncIterator[None]:
    """A BEFORE trigger that raises `sqlstate` for rows of this one SD only.

    A real database error at a chosen step, with no test-only branch in the functions. The
    WHEN clause limits it to the test's own SD, so other tests' rows are never affected, and
    the function (with its trigger) is dropped afterwards whatever happens.
    """
    name = f"leo_test_fault_{uuid.uuid4().hex[:16]}"
    quote = await conn.fetchval(
        "SELECT ARRAY[quote_literal($1), quote_literal($2)]", sqlstate, message
    )
    await conn.execute(
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$ "
        f"BEGIN RAISE EXCEPTION USING ERRCODE = {quote[0]}, MESSAGE = {quote[1]}; END $fn$"
    )
    try:
        sd_literal = await conn.fetchval("SELECT quote_literal($1)", sd_id)
        await conn.execute(
            f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW "
            f"WHEN (NEW.{column} = {sd_literal} AND ({when})) EXECUTE FUNCTION {name}()"
        )
        yield
    finally:
        await conn.execute(f"DROP FUNCTION {name}() CASCADE")


@dataclass(frozen=True)
class Fault:
    """A database error injected at one numbered step of a transition function."""

    step: str
    table: str
    event: str
    sqlstate: str
    # What the steps before this one had done (and PostgreSQL then rolled back).
    partial_state: dict[str, Any]
    when: str = "true"
    label: str = ""

    @property
    def column(self) -> str:
        return "id" if self.table == "strategic_directives_v2" else "sd_id"

    @property
    def id(self) -> str:
        return self.label or self.step


# The last step of every handoff ("N. Record handoff") does two writes; each may fail. (The
# version bump is part of the step that updates the SD since issue 13: one write of the row.)
def record_handoff_faults(step: str, partial_state: dict[str, Any]) -> list[Fault]:
    return [
        Fault(
            step, "sd_phase_handoffs", "INSERT", "23505", partial_state, label=f"{step} (insert)"
        ),
        Fault(
            step,
            "sd_transition_audit",
            "INSERT",  # the completed row is written once, at the end of the steps
            # Not 40001/40P01: those are transient conflicts, re-raised for a retry.
            "55000",
            partial_state,
            when="NEW.status = 'completed'",
            label=f"{step} (complete audit)",
        ),
    ]


async def assert_fault_rolls_back(
    pool: asyncpg.Pool,
    handoff: str,
    sd: SdFixture,
    fault: Fault,
    *,
    session_id: str | None = None,
) -> dict[str, Any]:
    """Inject `fault`, then check that nothing changed but the persisted failed audit row."""
    before = await snapshot(pool, sd.id)
    assert before.audits == []
    ctx = context()
    message = f"injected fault at {fault.id}"
    async with failing_trigger(
        pool,
        table=fault.table,
        event=fault.event,
        column=fault.column,
        sd_id=sd.id,
        sqlstate=fault.sqlstate,
        message=message,
        when=fault.when,
    ):
        result = await call(pool, handoff, sd.id, ctx, session_id=session_id)
    after = await snapshot(pool, sd.id)

    assert result["success"] is False
    assert result["code"] == "TRANSITION_FAILED"
    assert fault.step in result["error"]
    # Every change rolled back: SD, PRD, stories, handoff records and claims are as before.
    assert after.without_audits() == before.without_audits()

    # ...but the attempt is on record, failed, with the full error record.
    [audit] = after.audits
    assert audit["status"] == "failed"
    assert audit["transition_type"] == transition_type(handoff)
    assert audit["request_id"] == ctx["request_id"]
    assert audit["post_state"] is None
    assert audit["handoff_id"] is None
    assert audit["completed_at"] is not None
    assert audit["result"] == result
    assert result["audit_id"] == str(audit["id"])
    details = audit["error_details"]
    assert details == result["error_details"]
    assert details["error_code"] == fault.sqlstate
    assert details["error_message"] == message
    assert details["failed_step"] == fault.step
    assert details["pre_state"] == audit["pre_state"]
    assert details["pre_state"]["sd_version"] == before.sd["transition_version"]
    assert details["pre_state"]["sd_status"] == before.sd["status"]
    assert details["partial_state"] == fault.partial_state
    assert fault.step in details["recovery_action"]
    assert fault.sqlstate in details["recovery_action"]
    assert "new request id" in details["recovery_action"]

    # The same request id again returns the recorded failure and applies nothing...
    again = await call(pool, handoff, sd.id, ctx, session_id=session_id)
    assert again == {**result, "idempotent_hit": True}
    assert (await snapshot(pool, sd.id)).without_audits() == before.without_audits()
    assert len(await audit_rows(pool, sd.id)) == 1

    # ...and once the cause is gone, a new request id applies: nothing was left half-done.
    retry = await call(pool, handoff, sd.id, context(), session_id=session_id)
    assert retry["success"] is True, retry
    assert retry["transition_version"] == before.sd["transition_version"] + 1
    return result


async def assert_refused_without_writes(
    pool: asyncpg.Pool,
    handoff: str,
    sd: SdFixture,
    code: str,
    *,
    sd_arg: Any = DEFAULT,
    ctx: Any = DEFAULT,
    prd_id: str | None = None,
    session_id: str | None = None,
) -> dict[str, Any]:
    """Call with something wrong and check the structured refusal wrote nothing at all."""
    assert code in REFUSAL_CODES
    before = await snapshot(pool, sd.id)
    result = await call(
        pool,
        handoff,
        sd.id if sd_arg is DEFAULT else sd_arg,
        context() if ctx is DEFAULT else ctx,
        prd_id=prd_id,
        session_id=session_id,
    )
    after = await snapshot(pool, sd.id)
    assert result["success"] is False, result
    assert result["code"] == code, result
    assert isinstance(result["error"], str)
    assert result["error"]
    assert after.without_audits() == before.without_audits()
    assert after.audits == before.audits
    return result


async def assert_idempotent_on_request_id(
    pool: asyncpg.Pool, handoff: str, sd: SdFixture, *, session_id: str | None = None
) -> None:
    ctx = context()
    first = await call(pool, handoff, sd.id, ctx, session_id=session_id)
    assert first["success"] is True, first
    assert first["idempotent_hit"] is False
    applied = await snapshot(pool, sd.id)

    # A retried activity sends the same request id, possibly spelling the SD by its key.
    second = await call(pool, handoff, sd.sd_key, ctx, session_id=session_id)
    assert second == {**first, "idempotent_hit": True}
    assert second["audit_id"] == first["audit_id"]
    after = await snapshot(pool, sd.id)
    assert after.without_audits() == applied.without_audits()
    assert after.audits == applied.audits
    assert len(after.audits) == 1
    assert len(after.handoffs) == 1


async def assert_refuses_wrong_phase(
    pool: asyncpg.Pool,
    handoff: str,
    sd: SdFixture,
    *,
    expected: str,
    actual_status: str,
    actual_phase: str,
) -> dict[str, Any]:
    result = await assert_refused_without_writes(pool, handoff, sd, "INVALID_PHASE")
    assert result["sd_id"] == sd.id
    assert result["expected"] == expected
    assert result["actual"]["status"] == actual_status
    assert result["actual"]["current_phase"] == actual_phase
    assert expected in result["error"]
    assert f"{actual_status} / {actual_phase}" in result["error"]
    return result


async def assert_refuses_version_conflict(pool: asyncpg.Pool, handoff: str, sd: SdFixture) -> None:
    # Someone else moved the SD on (here: only its version) since the caller read it.
    await pool.execute(
        "UPDATE strategic_directives_v2 SET transition_version = 3 WHERE id = $1", sd.id
    )
    result = await assert_refused_without_writes(
        pool, handoff, sd, "VERSION_CONFLICT", ctx=context(expected_version=2)
    )
    assert result["expected_version"] == 2
    assert result["actual_version"] == 3
    assert result["sd_id"] == sd.id
    # The right version goes through.
    ok = await call(pool, handoff, sd.id, context(expected_version=3))
    assert ok["success"] is True, ok
    assert ok["transition_version"] == 4


async def assert_refuses_unknown_sd(pool: asyncpg.Pool, handoff: str, sd: SdFixture) -> None:
    missing = f"{sd.sd_key}-MISSING"
    result = await assert_refused_without_writes(pool, handoff, sd, "SD_NOT_FOUND", sd_arg=missing)
    assert result["sd_id"] == missing
    assert missing in result["error"]


async def assert_refuses_foreign_claim(pool: asyncpg.Pool, handoff: str, sd: SdFixture) -> None:
    holder = new_session_id()
    assert (await claim(pool, sd.id, holder))["success"] is True
    for caller in (new_session_id(), None):
        # Neither another session nor an anonymous caller may move a claimed SD.
        result = await assert_refused_without_writes(
            pool, handoff, sd, "CLAIMED_BY_OTHER_SESSION", session_id=caller
        )
        assert result["claimed_by"] == holder
        assert holder in result["error"]


async def assert_claim_holder_passes(pool: asyncpg.Pool, handoff: str, sd: SdFixture) -> None:
    holder = new_session_id()
    assert (await claim(pool, sd.id, holder))["success"] is True
    result = await call(pool, handoff, sd.sd_key, context(), session_id=holder)
    assert result["success"] is True, result
    [audit] = await audit_rows(pool, sd.id)
    assert audit["session_id"] == holder
    [handoff_row] = await handoff_rows(pool, sd.id)
    assert handoff_row["session_id"] == holder


async def assert_handoff_recorded(
    pool: asyncpg.Pool,
    handoff: str,
    sd: SdFixture,
    result: dict[str, Any],
    ctx: dict[str, Any],
    *,
    from_phase: str,
    to_phase: str,
    session_id: str | None,
) -> None:
    """The sd_phase_handoffs row and the completed audit row of a successful transition."""
    [row] = await handoff_rows(pool, sd.id)
    assert str(row["id"]) == result["handoff_id"]
    assert row["handoff_type"] == handoff
    assert (row["from_phase"], row["to_phase"]) == (from_phase, to_phase)
    assert row["status"] == "accepted"
    assert float(row["validation_score"]) == GATE_SUMMARY["normalized_score"]
    assert row["validation_passed"] is True
    assert row["validation_details"] == GATE_SUMMARY
    assert row["metadata"]["audit_id"] == result["audit_id"]
    assert row["request_id"] == ctx["request_id"]
    assert row["session_id"] == session_id
    assert row["accepted_at"] is not None
    assert row["rejection_reason"] is None

    [audit] = await audit_rows(pool, sd.id)
    assert str(audit["id"]) == result["audit_id"]
    assert audit["transition_type"] == transition_type(handoff)
    assert audit["status"] == "completed"
    assert audit["request_id"] == ctx["request_id"]
    assert audit["session_id"] == session_id
    assert audit["pre_state"] == result["pre_state"]
    assert audit["post_state"] == result["post_state"]
    assert audit["result"] == result
    assert str(audit["handoff_id"]) == result["handoff_id"]
    assert audit["error_details"] is None
    assert audit["completed_at"] is not None

    assert result["success"] is True
    assert result["code"] == "OK"
    assert result["idempotent_hit"] is False
    assert result["handoff_type"] == handoff
    assert result["request_id"] == ctx["request_id"]
    assert result["sd_id"] == sd.id
    assert result["sd_key"] == sd.sd_key
