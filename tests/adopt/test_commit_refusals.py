"""Adopt mode follows native mode's commit refusals (issue 17 item 2).

- A verdict the SD's state refuses at commit time (VERSION_CONFLICT, CLAIMED_BY_OTHER_SESSION,
  INVALID_PHASE, INVALID_PRD_STATUS) leaves one failed audit row, written the way adopt mode
  writes audit rows (theirs keyed on the SD's uuid_id, LEO's outcome in leo.transition_results),
  beside the result rows, and nothing else; a repeat of the request id returns it and writes
  nothing; a CONCURRENT_LOCK writes nothing at all (tests/db/test_commit_refusals.py natively).
- A rejection passes the same lock, phase, version and claim checks as a transition (F10).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from db import lifecycle as db_lifecycle
from db.pool import connect
from tests.adopt.fixture import new_sd, register_session, table_checksums
from tests.support.db import GATE_SUMMARY, call, context, new_request_id

REJECTED: dict[str, Any] = {"passed": False, "normalized_score": 40, "failed_gate": "GATE_X"}
# What a refused verdict may write: the failed audit row (theirs and LEO's outcome) and the
# agents' result rows (theirs and LEO's keys).
REFUSAL_WRITES = {
    "public.sd_transition_audit",
    "leo.transition_results",
    "public.sub_agent_execution_results",
    "leo.sub_agent_result_keys",
}


def result_row(key: str) -> dict[str, Any]:
    return {"idempotency_key": key, "reuse_key": f"r-{key}", "code": "X", "name": "X",
            "verdict": "PASS", "confidence": 90}  # fmt: skip


async def commit(
    conn: asyncpg.Connection,
    handoff: str,
    sd_id: str,
    *,
    accepted: bool,
    ctx: dict[str, Any],
    results: list[dict[str, Any]],
    session_id: str | None,
) -> dict[str, Any]:
    raw = await conn.fetchval(
        "SELECT fn_commit_handoff(p_handoff_type => $1, p_sd_id => $2, p_accepted => $3, "
        "p_phase => 'LEAD_PRE_APPROVAL', p_sub_agent_results => $4, p_session_id => $5, "
        "p_transition_context => $6)",
        handoff,
        sd_id,
        accepted,
        results,
        session_id,
        ctx,
    )
    assert isinstance(raw, dict), raw
    return raw


async def sums(conn: asyncpg.Connection) -> dict[str, str]:
    return {**await table_checksums(conn, "public"), **await table_checksums(conn, "leo")}


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {table for table in after if after[table] != before.get(table)}


async def claim(conn: asyncpg.Connection, sd_id: str, session: str | None = None) -> str:
    session = session or f"session_leo_{uuid.uuid4().hex[:8]}"
    claimed = await db_lifecycle.claim_sd(conn, sd_id, session)
    assert claimed["success"] is True, claimed
    return session


async def refused_sd(conn: asyncpg.Connection, cause: str) -> tuple[str, str, str, int]:
    """An SD whose state refuses the handoff for `cause`: (sd id, handoff, session, version)."""
    sd_id, key = await new_sd(conn)
    session = await claim(conn, sd_id)
    if cause == "VERSION_CONFLICT":
        return sd_id, "LEAD-TO-PLAN", session, 7
    if cause == "CLAIMED_BY_OTHER_SESSION":
        assert (await db_lifecycle.release_sd(conn, session, "manual"))["success"]
        theirs = f"session_{uuid.uuid4().hex[:8]}_tty1_1"
        await register_session(conn, theirs)
        claimed = await conn.fetchval(
            "SELECT public.claim_sd(p_sd_id => $1, p_session_id => $2, p_track => 'A')", key, theirs
        )
        assert claimed["success"] is True, claimed
        return sd_id, "LEAD-TO-PLAN", session, 1
    if cause == "INVALID_PHASE":
        return sd_id, "PLAN-TO-EXEC", session, 1
    assert cause == "INVALID_PRD_STATUS"
    moved = await call(conn, "LEAD-TO-PLAN", sd_id, context(expected_version=1), session_id=session)
    assert moved["success"] is True, moved
    await conn.execute(
        "UPDATE public.product_requirements_v2 SET status = 'on_hold' WHERE sd_id = $1", sd_id
    )
    return sd_id, "PLAN-TO-EXEC", session, 2


# A rejection passes the transition's phase, version and claim checks (native mode's F10), not
# the PRD's status: a PRD on hold does not stop a rejection from being recorded.
@pytest.mark.parametrize(
    ("cause", "accepted"),
    [
        ("VERSION_CONFLICT", True),
        ("VERSION_CONFLICT", False),
        ("CLAIMED_BY_OTHER_SESSION", True),
        ("CLAIMED_BY_OTHER_SESSION", False),
        ("INVALID_PHASE", True),
        ("INVALID_PHASE", False),
        ("INVALID_PRD_STATUS", True),
    ],
)
async def test_a_refused_verdict_leaves_one_failed_audit_row_with_the_result_rows(
    adopted: asyncpg.Connection, cause: str, accepted: bool
) -> None:
    sd_id, handoff, session, version = await refused_sd(adopted, cause)
    uuid_id = await adopted.fetchval(
        "SELECT uuid_id FROM public.strategic_directives_v2 WHERE id = $1", sd_id
    )
    request_id = new_request_id()
    ctx = context(request_id, expected_version=version,
                  gate_summary=GATE_SUMMARY if accepted else REJECTED)  # fmt: skip
    verdict = "accepted" if accepted else "rejected"
    before = await sums(adopted)

    refused = await commit(adopted, handoff, sd_id, accepted=accepted, ctx=ctx,
                           results=[result_row(f"k-{request_id}")], session_id=session)  # fmt: skip

    assert (refused["success"], refused["code"], refused["decision"]) == (False, cause, "refused")
    # Their audit row, keyed on the SD's uuid_id, the request id LEO's audit rows carry.
    audits = await adopted.fetch(
        "SELECT id::text AS id, status, request_id, transition_type, session_id, error_details "
        "FROM public.sd_transition_audit WHERE sd_id = $1",
        uuid_id,
    )
    assert len(audits) == (2 if cause == "INVALID_PRD_STATUS" else 1), audits
    audit = next(a for a in audits if a["request_id"] == f"leo:{request_id}")
    assert (audit["status"], audit["transition_type"], audit["session_id"]) == (
        "failed", handoff.replace("-", "_"), session,
    )  # fmt: skip
    details = audit["error_details"]
    assert (details["error_code"], details["verdict"], details["failed_step"]) == (
        cause, verdict, "precondition",
    )  # fmt: skip
    assert details["gate_summary"] == ctx["gate_summary"] and details["recovery_action"]
    assert refused["audit_id"] == audit["id"]
    # LEO's record of it, read back through LEO's view as LEO's code reads audit rows.
    seen = await adopted.fetchrow(
        "SELECT status, request_id, result FROM sd_transition_audit WHERE id = $1::uuid",
        audit["id"],
    )
    assert seen is not None and (seen["status"], seen["request_id"]) == ("failed", request_id)
    assert seen["result"]["code"] == cause
    # Nothing else: the audit row and the agents' result row, no handoff row, SD, PRD or claim.
    assert changed(before, await sums(adopted)) == REFUSAL_WRITES
    assert (
        await adopted.fetchval(
            "SELECT count(*) FROM public.sub_agent_execution_results WHERE sd_id = $1", sd_id
        )
        == 1
    )

    # A repeat of the request id (the other verdict this time) returns it and writes nothing.
    between = await sums(adopted)
    again = await commit(adopted, handoff, sd_id, accepted=not accepted,
                         ctx={**ctx, "gate_summary": REJECTED if accepted else GATE_SUMMARY},
                         results=[result_row(f"k2-{request_id}")], session_id=session)  # fmt: skip
    assert (again["code"], again["idempotent_hit"], again["decision"]) == (cause, True, "refused")
    assert again["audit_id"] == audit["id"]
    assert await sums(adopted) == between


async def test_a_concurrent_lock_writes_neither_results_nor_audit(
    adopted: asyncpg.Connection, ehg_dsn: str
) -> None:
    sd_id, _ = await new_sd(adopted)
    session = await claim(adopted, sd_id)
    before = await sums(adopted)
    holder = await connect(ehg_dsn, search_path="leo, public")
    try:
        async with holder.transaction():
            await holder.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('leo:sd:' || $1, 0))", sd_id
            )
            for accepted in (True, False):
                refused = await commit(adopted, "LEAD-TO-PLAN", sd_id, accepted=accepted,
                                       ctx=context(expected_version=7, gate_summary=(
                                           GATE_SUMMARY if accepted else REJECTED)),
                                       results=[result_row(new_request_id())],
                                       session_id=session)  # fmt: skip
                assert refused["code"] == "CONCURRENT_LOCK", refused
    finally:
        await holder.close()
    assert await sums(adopted) == before
