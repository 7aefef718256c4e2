"""claim_sd, heartbeat_sd_claim and release_sd: one live claim per SD, stale claims taken over."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from tests.support.db import call, claim, context, new_session_id, sd_row
from tests.support.factories import create_sd

# Stands for "a fresh, valid session id" in parameters, which are built once at import.
NEW = "<new session>"


async def session_row(pool: asyncpg.Pool, session_id: str) -> dict[str, Any]:
    row = await pool.fetchrow("SELECT * FROM claude_sessions WHERE session_id = $1", session_id)
    assert row is not None
    return dict(row)


async def age_heartbeat(pool: asyncpg.Pool, session_id: str, seconds: int) -> None:
    await pool.execute(
        "UPDATE claude_sessions SET heartbeat_at = now() - make_interval(secs => $2) "
        "WHERE session_id = $1",
        session_id,
        seconds,
    )


async def heartbeat(pool: asyncpg.Pool, session_id: str) -> dict[str, Any]:
    result = await pool.fetchval("SELECT heartbeat_sd_claim(p_session_id => $1)", session_id)
    assert isinstance(result, dict)
    return result


async def release(pool: asyncpg.Pool, session_id: str, reason: str = "manual") -> dict[str, Any]:
    result = await pool.fetchval(
        "SELECT release_sd(p_session_id => $1, p_reason => $2)", session_id, reason
    )
    assert isinstance(result, dict)
    return result


async def test_a_claim_marks_the_sd_as_worked_on_by_the_session(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, uuid_id=True)
    session = new_session_id()

    # Claimed by its human key; recorded against the canonical id.
    result = await claim(db_pool, sd.sd_key, session)

    assert result == {
        "success": True,
        "code": "OK",
        "sd_id": sd.id,
        "session_id": session,
        "took_over_from": None,
        "released_previous": None,
    }
    row = await session_row(db_pool, session)
    assert (row["sd_id"], row["status"], row["track"]) == (sd.id, "active", "STANDALONE")
    assert row["claimed_at"] is not None
    assert row["released_at"] is None
    sd_after = await sd_row(db_pool, sd.id)
    assert sd_after["claiming_session_id"] == session
    assert sd_after["active_session_id"] == session
    assert sd_after["is_working_on"] is True


async def test_a_second_session_is_refused_while_the_first_claim_is_live(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(db_pool)
    first, second = new_session_id(), new_session_id()
    assert (await claim(db_pool, sd.id, first))["success"] is True
    # Nearly stale, but still live: 299 s is inside the 300 s window.
    await age_heartbeat(db_pool, first, 299)

    result = await claim(db_pool, sd.sd_key, second)

    assert result["success"] is False
    assert result["code"] == "CLAIMED_BY_OTHER_SESSION"
    assert result["claimed_by"] == first
    assert first in result["error"]
    assert (await sd_row(db_pool, sd.id))["claiming_session_id"] == first
    assert (await session_row(db_pool, first))["status"] == "active"
    assert (
        await db_pool.fetchval("SELECT count(*) FROM claude_sessions WHERE session_id = $1", second)
        == 0
    )


async def test_claiming_again_by_the_same_session_keeps_the_claim(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool)
    session = new_session_id()
    assert (await claim(db_pool, sd.id, session))["success"] is True
    claimed_at = (await session_row(db_pool, session))["claimed_at"]
    await age_heartbeat(db_pool, session, 120)

    result = await claim(db_pool, sd.id, session)

    assert result["success"] is True
    assert result["took_over_from"] is None
    row = await session_row(db_pool, session)
    assert row["claimed_at"] == claimed_at
    assert (
        await db_pool.fetchval(
            "SELECT heartbeat_age_seconds FROM v_active_sessions WHERE session_id = $1", session
        )
        < 5
    )


async def test_a_stale_claim_is_taken_over(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool)
    stale, fresh = new_session_id(), new_session_id()
    assert (await claim(db_pool, sd.id, stale))["success"] is True
    await age_heartbeat(db_pool, stale, 301)
    assert (
        await db_pool.fetchval(
            "SELECT computed_status FROM v_active_sessions WHERE session_id = $1", stale
        )
        == "stale"
    )

    result = await claim(db_pool, sd.id, fresh)

    assert result["success"] is True, result
    assert result["took_over_from"] == stale
    old = await session_row(db_pool, stale)
    assert (old["status"], old["release_reason"]) == ("released", "takeover")
    assert old["released_at"] is not None
    new = await session_row(db_pool, fresh)
    assert (new["sd_id"], new["status"]) == (sd.id, "active")
    sd_after = await sd_row(db_pool, sd.id)
    assert sd_after["claiming_session_id"] == fresh
    assert sd_after["is_working_on"] is True
    # The stale session has lost the SD: its heartbeat no longer revives anything.
    assert (await heartbeat(db_pool, stale))["code"] == "NO_ACTIVE_CLAIM"


async def test_a_stale_claim_no_longer_blocks_a_transition(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    stale = new_session_id()
    assert (await claim(db_pool, sd.id, stale))["success"] is True
    refused = await call(db_pool, "LEAD-TO-PLAN", sd.id, context(), session_id=new_session_id())
    assert refused["code"] == "CLAIMED_BY_OTHER_SESSION"

    await age_heartbeat(db_pool, stale, 301)
    result = await call(db_pool, "LEAD-TO-PLAN", sd.id, context(), session_id=new_session_id())

    assert result["success"] is True, result


async def test_a_heartbeat_keeps_a_claim_live(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool)
    holder, other = new_session_id(), new_session_id()
    assert (await claim(db_pool, sd.id, holder))["success"] is True
    await age_heartbeat(db_pool, holder, 290)

    result = await heartbeat(db_pool, holder)
    # Well past the original 300 s window, had the heartbeat not been refreshed.
    await db_pool.execute(
        "UPDATE claude_sessions SET heartbeat_at = heartbeat_at - interval '20 seconds' "
        "WHERE session_id = $1",
        holder,
    )

    assert result == {"success": True, "code": "OK", "sd_id": sd.id, "session_id": holder}
    assert (await claim(db_pool, sd.id, other))["code"] == "CLAIMED_BY_OTHER_SESSION"


async def test_a_heartbeat_without_a_claim_is_refused(db_pool: asyncpg.Pool) -> None:
    result = await heartbeat(db_pool, new_session_id())
    assert result["success"] is False
    assert result["code"] == "NO_ACTIVE_CLAIM"


async def test_release_clears_the_claim_from_the_sd(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool)
    session, other = new_session_id(), new_session_id()
    assert (await claim(db_pool, sd.id, session))["success"] is True

    result = await release(db_pool, session, "session_ended")

    assert result == {"success": True, "code": "OK", "sd_id": sd.id, "session_id": session}
    sd_after = await sd_row(db_pool, sd.id)
    assert sd_after["claiming_session_id"] is None
    assert sd_after["active_session_id"] is None
    assert sd_after["is_working_on"] is False
    row = await session_row(db_pool, session)
    assert (row["status"], row["release_reason"]) == ("released", "session_ended")
    assert row["released_at"] is not None
    # Released twice is harmless, and the SD is free for anyone.
    assert (await release(db_pool, session))["code"] == "NOT_CLAIMED"
    assert (await claim(db_pool, sd.id, other))["success"] is True


async def test_claiming_another_sd_releases_the_previous_one(db_pool: asyncpg.Pool) -> None:
    first, second = await create_sd(db_pool), await create_sd(db_pool)
    session = new_session_id()
    assert (await claim(db_pool, first.id, session))["success"] is True

    result = await claim(db_pool, second.id, session)

    assert result["success"] is True
    assert result["released_previous"] == first.id
    first_row = await sd_row(db_pool, first.id)
    assert (first_row["claiming_session_id"], first_row["is_working_on"]) == (None, False)
    assert (await sd_row(db_pool, second.id))["claiming_session_id"] == session
    assert (await session_row(db_pool, session))["sd_id"] == second.id


@pytest.mark.parametrize(
    ("sd_arg", "session_id", "track", "code"),
    [
        (None, NEW, "A", "INVALID_INPUT"),
        ("", NEW, "A", "INVALID_INPUT"),
        ("SD-X", "", "A", "INVALID_INPUT"),
        ("SD-X", None, "A", "INVALID_INPUT"),
        ("SD-X", "s" * 201, "A", "INVALID_INPUT"),
        ("SD-X", NEW, "D", "INVALID_INPUT"),
        ("SD-1'; DROP TABLE claude_sessions; --", NEW, "A", "SD_NOT_FOUND"),
    ],
    ids=[
        "null sd",
        "empty sd",
        "empty session",
        "null session",
        "long session",
        "bad track",
        "injection",
    ],
)
async def test_a_malformed_claim_is_refused_without_writes(
    db_pool: asyncpg.Pool, sd_arg: str | None, session_id: str | None, track: str, code: str
) -> None:
    if session_id == NEW:
        session_id = new_session_id()
    result = await db_pool.fetchval(
        "SELECT claim_sd(p_sd_id => $1, p_session_id => $2, p_track => $3)",
        sd_arg,
        session_id,
        track,
    )
    assert result["success"] is False
    assert result["code"] == code
    assert (
        await db_pool.fetchval(
            "SELECT count(*) FROM claude_sessions WHERE session_id = $1", session_id
        )
        == 0
    )


async def test_release_refuses_an_unknown_reason(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool)
    session = new_session_id()
    assert (await claim(db_pool, sd.id, session))["success"] is True
    # 'takeover' is recorded by claim_sd only; a session cannot release "as a takeover".
    result = await release(db_pool, session, "takeover")
    assert result["code"] == "INVALID_INPUT"
    assert (await session_row(db_pool, session))["status"] == "active"


async def test_sessions_racing_for_one_sd_get_exactly_one_claim(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool)
    sessions = [new_session_id() for _ in range(20)]

    async def claim_on_own_connection(session: str) -> dict[str, Any]:
        async with db_pool.acquire() as conn:
            return await claim(conn, sd.id, session)

    # No caller may see a bare unique_violation from the one-active-claim index.
    results = await asyncio.gather(*(claim_on_own_connection(s) for s in sessions))

    winners = [s for s, r in zip(sessions, results, strict=True) if r["success"]]
    assert len(winners) == 1
    assert {r["code"] for r in results if not r["success"]} == {"CLAIMED_BY_OTHER_SESSION"}
    assert {r["claimed_by"] for r in results if not r["success"]} == set(winners)
    assert (await sd_row(db_pool, sd.id))["claiming_session_id"] == winners[0]
    assert (
        await db_pool.fetchval(
            "SELECT array_agg(session_id) FROM claude_sessions WHERE sd_id = $1", sd.id
        )
        == winners
    )
