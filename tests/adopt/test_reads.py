"""LEO's own read code (db/*.py, unchanged) on their rows through the views of schema leo:
NULLs, naive timestamps, two PRDs for one SD, a PRD linked only by directive_id, NULL-phase
results, claims by sd_key (idle and stale ones) and UUID ids all read as LEO's models expect."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from db.sd_history import get_audit_trail, get_claim, get_sd_status
from db.sds import get_sd_details
from db.snapshots import read_prepared_rows, read_snapshot_rows
from leo.domain.snapshot import PrdSnapshot, SdSnapshot, SubAgentEvidence, SubAgentSpec
from tests.adopt.fixture import new_sd, register_session
from tests.support.db import call, context


async def sd_id_of(conn: asyncpg.Connection, key: str) -> str:
    value = await conn.fetchval("SELECT leo_resolve_sd_id($1)", key)
    assert isinstance(value, str)
    return value


async def test_nulls_and_naive_timestamps_read_as_defaults(adopted: asyncpg.Connection) -> None:
    nulls = await get_sd_details(adopted, "SD-FIX-NULLS-001")  # current_phase NULL
    assert nulls is not None and nulls.sd.current_phase == "LEAD_APPROVAL"
    no_version = await get_sd_details(adopted, "SD-FIX-004")  # transition_version NULL
    assert no_version is not None and no_version.sd.transition_version == 1
    assert isinstance(no_version.sd.created_at, datetime) and no_version.sd.created_at.tzinfo
    no_metadata = await get_sd_details(adopted, "SD-FIX-006")  # metadata NULL
    assert no_metadata is not None and no_metadata.sd.metadata == {}


async def test_one_prd_per_sd_by_the_documented_rule(adopted: asyncpg.Connection) -> None:
    two = await get_sd_details(adopted, "SD-FIX-006")
    assert two is not None and two.prd is not None
    assert two.prd.id == "PRD-SD-FIX-006-V2"  # not archived, newest
    linked = await get_sd_details(adopted, "SD-FIX-009")  # a UUID id; PRD by directive_id only
    assert linked is not None and linked.sd.id != linked.sd.sd_key
    assert linked.prd is not None and linked.prd.id == "PRD-SD-FIX-008"
    assert [s.story_key for s in two.stories] == ["SD-FIX-006:US-001", "SD-FIX-006:US-002"]
    assert {s.validation_status for s in two.stories} == {"pending"}  # one was NULL


async def test_the_snapshot_reads_their_rows(adopted: asyncpg.Connection) -> None:
    rows = await read_snapshot_rows(adopted, "SD-FIX-006", evidence_max_age_hours=24 * 3650)
    assert rows is not None
    SdSnapshot.model_validate(dict(rows.sd))
    assert rows.prd is not None and PrdSnapshot.model_validate(dict(rows.prd)).id == (
        "PRD-SD-FIX-006-V2"
    )
    evidence = [SubAgentEvidence.model_validate(dict(r)) for r in rows.evidence]
    assert {(e.sub_agent_code, e.phase) for e in evidence} == {
        ("SECURITY", "UNKNOWN"),
        ("TESTING", "PLAN-TO-EXEC"),
        ("DATABASE", "PLAN_PRD"),
    }
    catalogue = {code: SubAgentSpec.from_row(row) for code, row in rows.catalogue.items()}
    assert catalogue["TESTING"].depends_on == ("STORIES",)  # LEO's executor settings
    assert catalogue["TESTING"].executor_kind == "builtin"
    assert catalogue["CONTEXT_WEAVER"].executor_kind is None  # theirs alone
    assert catalogue["RETRO"].priority == 0  # NULL priority
    # Their accepted handoffs are seen (twice LEAD-TO-PLAN), but carry no LEO request id.
    types = [h["handoff_type"] for h in rows.handoffs]
    assert "LEAD-TO-PLAN" in types and "PLAN-TO-EXEC" in types


async def test_claims_by_sd_key_with_their_600_second_window(adopted: asyncpg.Connection) -> None:
    active = await get_claim(adopted, await sd_id_of(adopted, "SD-FIX-008"))
    assert active is not None and active.computed_status == "active"
    idle = await get_claim(adopted, await sd_id_of(adopted, "SD-FIX-007"))  # idle, holds the key
    assert idle is not None and idle.session_id == "session_1b2c3d4e_tty2_202"
    stale = await get_claim(adopted, await sd_id_of(adopted, "SD-FIX-003"))  # 2 h old
    assert stale is not None and stale.computed_status == "stale"
    status = await get_sd_status(adopted, "SD-FIX-008")
    assert status is not None and status.is_working_on


async def test_their_audit_rows_read_by_canonical_id(adopted: asyncpg.Connection) -> None:
    trail = await get_audit_trail(adopted, "SD-FIX-009")  # audit keyed on uuid_id
    assert trail is not None
    assert [(e.transition_type, e.status) for e in trail.entries] == [("EXEC-TO-PLAN", "completed")]


async def test_the_snapshot_step_reads_in_one_call(adopted: asyncpg.Connection) -> None:
    """leo.fn_prepare_handoff answers the snapshot step's one round trip: the same rows as the
    step-by-step reads, and the same refusal as the transition would give."""
    hours = 24 * 3650
    prepared = await read_prepared_rows(
        adopted, "PLAN-TO-EXEC", "SD-FIX-006", session_id=None, evidence_max_age_hours=hours
    )
    assert prepared is not None and prepared.rows is not None  # the function exists in leo
    stepwise = await read_snapshot_rows(adopted, "SD-FIX-006", evidence_max_age_hours=hours)
    assert stepwise is not None
    assert SdSnapshot.model_validate(dict(prepared.rows.sd)) == SdSnapshot.model_validate(
        dict(stepwise.sd)
    )
    assert prepared.rows.prd is not None and prepared.rows.prd["id"] == "PRD-SD-FIX-006-V2"
    assert len(prepared.rows.stories) == len(stepwise.stories) == 2
    assert set(prepared.rows.catalogue) == set(stepwise.catalogue)
    assert prepared.refusal is None and prepared.accepted is None
    _, claimed = await new_sd(adopted)
    await register_session(adopted, "session_theirs_1")
    await adopted.fetchval(
        "SELECT public.claim_sd(p_sd_id => $1, p_session_id => 'session_theirs_1', p_track => 'A')",
        claimed,
    )
    for handoff, ref, session, code in [
        ("LEAD-TO-PLAN", "SD-FIX-006", None, "INVALID_PHASE"),
        ("LEAD-TO-PLAN", claimed, "session_other", "CLAIMED_BY_OTHER_SESSION"),
        ("LEAD-TO-PLAN", "SD-NOPE", None, "SD_NOT_FOUND"),
    ]:
        check = await read_prepared_rows(
            adopted, handoff, ref, session_id=session, evidence_max_age_hours=hours
        )
        assert check is not None and check.refusal is not None
        assert check.refusal["code"] == code
        tx = adopted.transaction()
        await tx.start()
        try:
            real = await call(adopted, handoff, ref, context(), session_id=session)
        finally:
            await tx.rollback()
        assert real["code"] == code
