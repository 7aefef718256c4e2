"""Adopt mode's claim heartbeat keyed by SD and session, as native mode's (issue 17): through
their claim (one claim, theirs), a session their claim_sd moved to another SD has lost the
first SD's claim; the check guards both forms of LEO's call against ambiguous overloads."""

from __future__ import annotations

import asyncpg

from db import lifecycle as db_lifecycle
from db.adopt.check import check_adoption
from tests.adopt.fixture import LEO_ACTOR, new_sd, register_actor
from tests.adopt.test_commit_refusals import claim


async def test_a_session_that_moved_to_another_sd_has_lost_the_first_claim(
    adopted: asyncpg.Connection,
) -> None:
    first, first_key = await new_sd(adopted)
    second, _ = await new_sd(adopted)
    session = await claim(adopted, first)
    beat = await db_lifecycle.heartbeat_sd_claim(adopted, session, first_key)  # by key too
    assert (beat["success"], beat["sd_id"]) == (True, first), beat

    await claim(adopted, second, session)  # their claim_sd moves the session's one claim
    lost = await db_lifecycle.heartbeat_sd_claim(adopted, session, first)
    assert (lost["success"], lost["code"], lost["sd_id"]) == (False, "NO_ACTIVE_CLAIM", first)
    assert lost["claimed_by"] is None and first in lost["error"]
    kept = await db_lifecycle.heartbeat_sd_claim(adopted, session, second)
    assert (kept["success"], kept["sd_id"]) == (True, second), kept

    # Another session took the first SD: the refusal names it; its heartbeat is untouched.
    other = await claim(adopted, first)
    stamp = "SELECT heartbeat_at FROM public.claude_sessions WHERE session_id = $1"
    at = await adopted.fetchval(stamp, other)
    lost = await db_lifecycle.heartbeat_sd_claim(adopted, session, first)
    assert (lost["code"], lost["claimed_by"]) == ("NO_ACTIVE_CLAIM", other), lost
    assert await adopted.fetchval(stamp, other) == at
    # The session-only form (histories recorded before issue 17) still answers as before.
    assert (await db_lifecycle.heartbeat_sd_claim(adopted, session))["sd_id"] == second


async def test_check_refuses_a_function_that_makes_the_per_sd_heartbeat_ambiguous(
    ehg: asyncpg.Connection,
) -> None:
    await register_actor(ehg)
    assert (await check_adoption(ehg, LEO_ACTOR)).blockers == []
    await ehg.execute(
        "CREATE FUNCTION public.heartbeat_sd_claim(p_session_id text, p_sd_id integer) "
        "RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$"
    )

    check = await check_adoption(ehg, LEO_ACTOR)

    assert [(f.topic, f.subject) for f in check.blockers] == [
        ("overload", "heartbeat_sd_claim(text,integer)")
    ]
    assert "heartbeat_sd_claim(p_session_id, p_sd_id) would be ambiguous" in (
        check.blockers[0].detail
    )
