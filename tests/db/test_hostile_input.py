"""Malformed and hostile arguments get a structured refusal and write nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from tests.support.db import (
    GATE_SUMMARY,
    assert_refused_without_writes,
    audit_rows,
    call,
    call_raw,
    context,
    new_request_id,
    snapshot,
)
from tests.support.factories import START_STATE, create_sd

HANDOFFS = list(START_STATE)
DROP_TABLE = "'; DROP TABLE strategic_directives_v2; --"


def valid(**changes: Any) -> dict[str, Any]:
    """A well-formed context with some keys replaced (or removed, with a value of ...)."""
    ctx = context()
    for key, value in changes.items():
        if value is ...:
            ctx.pop(key, None)
        else:
            ctx[key] = value
    return ctx


def gate(**changes: Any) -> dict[str, Any]:
    summary = dict(GATE_SUMMARY)
    for key, value in changes.items():
        if value is ...:
            summary.pop(key)
        else:
            summary[key] = value
    return summary


# Each entry: a context the caller might send, and why it must be refused.
# Factories, so every test gets its own request id (a shared one would be refused as reused).
BAD_CONTEXTS: dict[str, Callable[[], Any]] = {
    "context is NULL": lambda: None,
    "context is an array": lambda: [{"request_id": "r-1", "expected_version": 1}],
    "context is a string": lambda: '{"request_id": "r-1"}',
    "context is a number": lambda: 42,
    "context is a boolean": lambda: True,
    "request_id is missing": lambda: valid(request_id=...),
    "request_id is empty": lambda: valid(request_id=""),
    "request_id is blank": lambda: valid(request_id="   "),
    "request_id is too long": lambda: valid(request_id="r" * 301),
    "request_id is a number": lambda: valid(request_id=7),
    "request_id is null": lambda: valid(request_id=None),
    "request_id is an object": lambda: valid(request_id={"id": "r-1"}),
    "expected_version is a string": lambda: valid(expected_version="1"),
    "expected_version is negative": lambda: valid(expected_version=-1),
    "expected_version is zero": lambda: valid(expected_version=0),
    "expected_version is a float": lambda: valid(expected_version=1.5),
    "expected_version is huge": lambda: valid(expected_version=10**12),
    "expected_version is a boolean": lambda: valid(expected_version=True),
    "expected_version is an array": lambda: valid(expected_version=[1]),
    "gate_summary is a string": lambda: valid(gate_summary="passed"),
    "gate_summary is an array": lambda: valid(gate_summary=[GATE_SUMMARY]),
    "gate_summary is a number": lambda: valid(gate_summary=87.5),
    "gate_summary is null": lambda: valid(gate_summary=None),
    "gate_summary.passed is false": lambda: valid(gate_summary=gate(passed=False)),
    "gate_summary.passed is the string false": lambda: valid(gate_summary=gate(passed="false")),
    "gate_summary.passed is missing": lambda: valid(gate_summary=gate(passed=...)),
    "gate_summary.normalized_score is text": lambda: valid(
        gate_summary=gate(normalized_score="high")
    ),
    "gate_summary.normalized_score is above 100": lambda: valid(
        gate_summary=gate(normalized_score=100.01)
    ),
    "gate_summary.normalized_score is negative": lambda: valid(
        gate_summary=gate(normalized_score=-0.5)
    ),
    "gate_summary is larger than 100 KB": lambda: valid(
        gate_summary=gate(
            gate_results=[{"gate": f"G{n}", "detail": "x" * 1000} for n in range(150)]
        )
    ),
    "metadata is a string": lambda: valid(metadata="audit me"),
    "metadata is an array": lambda: valid(metadata=["a"]),
}


@pytest.mark.parametrize("handoff", HANDOFFS)
@pytest.mark.parametrize("make_ctx", list(BAD_CONTEXTS.values()), ids=list(BAD_CONTEXTS))
async def test_a_malformed_context_is_refused_as_invalid_input_without_writes(
    db_pool: asyncpg.Pool, handoff: str, make_ctx: Callable[[], Any]
) -> None:
    sd = await create_sd(db_pool, ready_for=handoff, stories=[{}])
    await assert_refused_without_writes(db_pool, handoff, sd, "INVALID_INPUT", ctx=make_ctx())


@pytest.mark.parametrize("handoff", HANDOFFS)
async def test_a_json_null_context_is_refused_as_invalid_input_without_writes(
    db_pool: asyncpg.Pool, handoff: str
) -> None:
    sd = await create_sd(db_pool, ready_for=handoff)
    before = await snapshot(db_pool, sd.id)
    result = await call_raw(db_pool, handoff, sd.id, "null")
    assert result["code"] == "INVALID_INPUT"
    assert result["success"] is False
    assert await snapshot(db_pool, sd.id) == before
    assert await audit_rows(db_pool, sd.id) == []


async def test_context_text_that_is_not_json_never_reaches_the_function(
    db_pool: asyncpg.Pool,
) -> None:
    # The argument is typed jsonb, so PostgreSQL rejects the text before the function runs:
    # the caller gets the server's own error (22P02) and nothing can have been written.
    sd = await create_sd(db_pool, ready_for="EXEC-TO-PLAN")
    before = await snapshot(db_pool, sd.id)
    with pytest.raises(asyncpg.InvalidTextRepresentationError):
        await call_raw(db_pool, "EXEC-TO-PLAN", sd.id, '{"request_id": "r-1", ')
    after = await snapshot(db_pool, sd.id)
    assert after.without_audits() == before.without_audits()
    assert after.audits == []


# Each entry: the id, and the refusal it gets. Only spaces count as "blank"; other whitespace
# cannot be an SD id (the id CHECK forbids it), so it is simply not found.
BAD_IDS: dict[str, tuple[Any, str]] = {
    "NULL": (None, "INVALID_INPUT"),
    "empty": ("", "INVALID_INPUT"),
    "blank": ("   ", "INVALID_INPUT"),
    "too long": ("S" * 201, "INVALID_INPUT"),
    "tab and newline": ("\t\n", "SD_NOT_FOUND"),
}


@pytest.mark.parametrize("handoff", HANDOFFS)
@pytest.mark.parametrize(("sd_arg", "code"), list(BAD_IDS.values()), ids=list(BAD_IDS))
async def test_an_empty_or_oversized_sd_id_is_refused_without_writes(
    db_pool: asyncpg.Pool, handoff: str, sd_arg: str | None, code: str
) -> None:
    sd = await create_sd(db_pool, ready_for=handoff)
    await assert_refused_without_writes(db_pool, handoff, sd, code, sd_arg=sd_arg)


# Spellings that must not resolve to the SD: injection attempts and near misses.
HOSTILE_ID_SUFFIXES = {
    "sql injection": DROP_TABLE,
    "double quote and semicolon": '"; SELECT pg_sleep(10); --',
    "like wildcard": "%",
    "regex wildcard": ".*",
    "trailing space": " ",
}


@pytest.mark.parametrize("handoff", HANDOFFS)
@pytest.mark.parametrize(
    "suffix", list(HOSTILE_ID_SUFFIXES.values()), ids=list(HOSTILE_ID_SUFFIXES)
)
async def test_quotes_and_semicolons_in_an_sd_id_are_data_not_sql(
    db_pool: asyncpg.Pool, handoff: str, suffix: str
) -> None:
    sd = await create_sd(db_pool, ready_for=handoff)
    hostile = f"{sd.sd_key}{suffix}"
    result = await assert_refused_without_writes(
        db_pool, handoff, sd, "SD_NOT_FOUND", sd_arg=hostile
    )
    # The refusal names the caller's spelling verbatim, and the table is still there.
    assert result["sd_id"] == hostile
    assert await db_pool.fetchval("SELECT to_regclass('strategic_directives_v2') IS NOT NULL")


@pytest.mark.parametrize(
    "sd_arg",
    [f"SD-1{DROP_TABLE}", "%", "_", "SD-TEST-%"],
    ids=["classic injection", "percent", "underscore", "key prefix with percent"],
)
async def test_an_id_that_matches_no_sd_is_refused_as_not_found(
    db_pool: asyncpg.Pool, sd_arg: str
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    result = await assert_refused_without_writes(
        db_pool, "LEAD-TO-PLAN", sd, "SD_NOT_FOUND", sd_arg=sd_arg
    )
    assert result["sd_id"] == sd_arg
    assert (
        await db_pool.fetchval("SELECT count(*) FROM sd_transition_audit WHERE sd_id = $1", sd_arg)
        == 0
    )


async def test_an_sd_key_in_another_case_does_not_resolve(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    await assert_refused_without_writes(
        db_pool, "LEAD-TO-PLAN", sd, "SD_NOT_FOUND", sd_arg=sd.sd_key.lower()
    )


@pytest.mark.parametrize("handoff", HANDOFFS)
async def test_a_prd_of_another_sd_is_refused_as_invalid_input(
    db_pool: asyncpg.Pool, handoff: str
) -> None:
    sd = await create_sd(db_pool, ready_for=handoff, with_prd=True)
    other = await create_sd(db_pool, ready_for=handoff, with_prd=True)
    assert other.prd_id is not None
    other_before = await snapshot(db_pool, other.id)

    result = await assert_refused_without_writes(
        db_pool, handoff, sd, "INVALID_INPUT", prd_id=other.prd_id
    )

    assert result["prd_id"] == other.prd_id
    assert result["sd_id"] == sd.id
    assert await snapshot(db_pool, other.id) == other_before


@pytest.mark.parametrize(
    "prd_id",
    ["", f"PRD-X{DROP_TABLE}", "PRD-DOES-NOT-EXIST"],
    ids=["empty", "injection", "unknown"],
)
async def test_an_unknown_prd_id_is_refused_as_invalid_input(
    db_pool: asyncpg.Pool, prd_id: str
) -> None:
    sd = await create_sd(db_pool, ready_for="PLAN-TO-EXEC")
    await assert_refused_without_writes(db_pool, "PLAN-TO-EXEC", sd, "INVALID_INPUT", prd_id=prd_id)


@pytest.mark.parametrize("session_id", ["", "   ", "s" * 201], ids=["empty", "blank", "too long"])
async def test_a_malformed_session_id_is_refused_as_invalid_input(
    db_pool: asyncpg.Pool, session_id: str
) -> None:
    sd = await create_sd(db_pool, ready_for="EXEC-TO-PLAN")
    await assert_refused_without_writes(
        db_pool, "EXEC-TO-PLAN", sd, "INVALID_INPUT", session_id=session_id
    )


async def test_a_request_id_used_on_another_sd_is_refused_as_invalid_input(
    db_pool: asyncpg.Pool,
) -> None:
    first = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    second = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    ctx = context()
    assert (await call(db_pool, "LEAD-TO-PLAN", first.id, ctx))["success"] is True

    result = await assert_refused_without_writes(
        db_pool, "LEAD-TO-PLAN", second, "INVALID_INPUT", ctx=ctx
    )
    assert first.id in result["error"]


async def test_a_request_id_used_for_another_handoff_is_refused_as_invalid_input(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", with_prd=True)
    ctx = context()
    assert (await call(db_pool, "LEAD-TO-PLAN", sd.id, ctx))["success"] is True

    # Now in PLAN_PRD, where PLAN-TO-EXEC would otherwise apply.
    result = await assert_refused_without_writes(
        db_pool, "PLAN-TO-EXEC", sd, "INVALID_INPUT", ctx={**ctx, "expected_version": 2}
    )
    assert "LEAD-TO-PLAN" in result["error"]


async def test_the_request_id_of_a_recorded_rejection_cannot_apply_the_transition(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(db_pool, ready_for="EXEC-TO-PLAN", stories=[{}])
    request_id = new_request_id()
    rejected = await db_pool.fetchval(
        "SELECT fn_record_handoff_rejection(p_sd_id => $1, p_handoff_type => $2, "
        "p_transition_context => $3)",
        sd.id,
        "EXEC-TO-PLAN",
        {"request_id": request_id, "gate_summary": {"passed": False, "normalized_score": 40}},
    )
    assert rejected["success"] is True

    result = await assert_refused_without_writes(
        db_pool, "EXEC-TO-PLAN", sd, "INVALID_INPUT", ctx=context(request_id)
    )
    assert "rejected handoff" in result["error"]


async def test_quotes_and_semicolons_in_a_request_id_are_stored_verbatim(
    db_pool: asyncpg.Pool,
) -> None:
    # Not hostile to a function that binds its values: it is just an unusual idempotency key.
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    request_id = f"r-1{DROP_TABLE.replace('strategic_directives_v2', 'sd_transition_audit')}"
    result = await call(db_pool, "LEAD-TO-PLAN", sd.id, context(request_id))
    assert result["success"] is True, result
    [audit] = await audit_rows(db_pool, sd.id)
    assert audit["request_id"] == request_id
    again = await call(db_pool, "LEAD-TO-PLAN", sd.id, context(request_id))
    assert again["idempotent_hit"] is True
