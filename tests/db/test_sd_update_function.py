"""fn_update_sd called directly: refusals write nothing, the lock and the version guard, the
change record, idempotency, and what an edit means for a handoff in flight."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from pydantic import ValidationError

from db.sd_updates import call_update_sd, list_sd_changes
from leo.api import LeoClient
from leo.services.sd_edit import SdEditError
from tests.support.db import call, context
from tests.support.factories import create_sd


async def state(pool: asyncpg.Pool, sd_id: str) -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT to_jsonb(sd) - 'updated_at' AS sd, "
        "(SELECT jsonb_agg(to_jsonb(s) - 'updated_at') FROM user_stories s WHERE s.sd_id = sd.id) "
        "AS stories, (SELECT count(*) FROM sd_changes c WHERE c.sd_id = sd.id) AS edits "
        "FROM strategic_directives_v2 sd WHERE id = $1",
        sd_id,
    )
    assert row is not None
    return dict(row)


async def update(
    pool: asyncpg.Pool | asyncpg.Connection, sd_id: str, changes: Any, **kw: Any
) -> Any:
    return await pool.fetchval(
        "SELECT fn_update_sd(p_sd_id => $1, p_changes => $2, p_actor => $3, "
        "p_expected_version => $4, p_request_id => $5)",
        sd_id,
        changes,
        kw.get("actor", "tester"),
        kw.get("expected_version"),
        kw.get("request_id"),
    )


@pytest.mark.parametrize(
    ("changes", "code", "fragment"),
    [
        ({"sd": {"current_phase": "EXEC"}}, "TRANSITION_OWNED_FIELD", "sd.current_phase"),
        ({"sd": {"transition_version": 9}}, "TRANSITION_OWNED_FIELD", "sd.transition_version"),
        ({"stories": [{"story_key": "X:US-001", "validation_status": "validated"}]},
         "TRANSITION_OWNED_FIELD", "stories[].validation_status"),
        ({"sd": {"nonsense": 1}}, "INVALID_INPUT", "sd.nonsense"),
        ({"other": {}}, "INVALID_INPUT", "unknown sections: other"),
        ({"sd": []}, "INVALID_INPUT", "must be objects"),
        ({"stories": [{"title": "no key"}]}, "INVALID_INPUT", "story_key"),
        # A value the table's CHECK refuses rolls back the title set in the same call.
        ({"sd": {"title": "Changed", "sd_type": "nonsense"}}, "INVALID_INPUT", "sd_type"),
    ],
)  # fmt: skip
async def test_refusals_name_the_problem_and_write_nothing(
    db_pool: asyncpg.Pool, changes: dict[str, Any], code: str, fragment: str
) -> None:
    sd = await create_sd(db_pool, with_prd=True)
    before = await state(db_pool, sd.id)

    result = await update(db_pool, sd.id, changes)

    assert (result["success"], result["code"]) == (False, code)
    assert fragment in result["error"]
    assert await state(db_pool, sd.id) == before


async def test_a_story_of_another_sd_is_refused_before_anything_is_written(
    db_pool: asyncpg.Pool,
) -> None:
    other = await create_sd(db_pool, stories=[{"title": "theirs"}])
    sd = await create_sd(db_pool)
    before = await state(db_pool, sd.id)

    result = await update(
        db_pool,
        sd.id,
        {
            "sd": {"title": "Mine now"},
            "stories": [{"story_key": other.story_keys[0], "title": "x"}],
        },
    )

    assert result["code"] == "INVALID_INPUT" and "belongs to another SD" in result["error"]
    assert await state(db_pool, sd.id) == before


async def test_an_edit_waits_for_no_one_it_refuses_while_a_transition_holds_the_lock(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(db_pool)
    async with db_pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT pg_advisory_xact_lock(leo_sd_lock_key($1))", sd.id)
        result = await update(db_pool, sd.id, {"sd": {"title": "Blocked"}})
    assert result["code"] == "CONCURRENT_LOCK"
    assert (await state(db_pool, sd.id))["edits"] == 0


async def test_the_version_guard_and_the_bump_keep_concurrent_edits_and_stale_handoffs_out(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")

    first = await call_update_sd(
        db_pool, sd.id, {"sd": {"scope": "Narrower"}}, actor="alice", expected_version=1
    )
    assert first.success and first.transition_version == 2
    # A second editor that read version 1 too is refused, not silently overwriting.
    second = await call_update_sd(
        db_pool, sd.id, {"sd": {"scope": "Wider"}}, actor="bob", expected_version=1
    )
    assert (second.success, second.code) == (False, "VERSION_CONFLICT")
    # A handoff whose gates judged version 1 cannot commit on the edited SD.
    stale = await call(db_pool, "LEAD-TO-PLAN", sd.id, context(expected_version=1))
    assert stale["code"] == "VERSION_CONFLICT"
    fresh = await call(db_pool, "LEAD-TO-PLAN", sd.id, context(expected_version=2))
    assert fresh["success"] is True

    (record,) = await list_sd_changes(db_pool, sd.id)
    assert (record.actor, record.version_before, record.version_after) == ("alice", 1, 2)
    assert record.changes == {"sd.scope": {"from": "Test scope", "to": "Narrower"}}


async def test_a_repeated_request_id_returns_the_first_outcome_and_records_once(
    db_pool: asyncpg.Pool,
) -> None:
    sd = await create_sd(db_pool)
    request_id = f"edit-{uuid.uuid4()}"

    first = await update(db_pool, sd.id, {"sd": {"title": "Once"}}, request_id=request_id)
    again = await update(db_pool, sd.id, {"sd": {"title": "Once"}}, request_id=request_id)

    assert first["success"] and again["idempotent_hit"] is True
    assert again["change_id"] == first["change_id"]
    assert (await state(db_pool, sd.id))["edits"] == 1


async def test_the_python_api_updates_with_the_same_validation(
    leo: LeoClient, db_pool: asyncpg.Pool
) -> None:
    sd = await create_sd(db_pool)

    result = await leo.update_sd(
        sd.sd_key,
        {"success_criteria": ["Readable rejections"], "prd": {"title": "A PRD at last"}},
        sets=["metadata.reviewed:=true"],
        actor="api-user",
    )

    assert result.actor == "api-user"
    assert set(result.changes) == {"sd.success_criteria", "sd.metadata", "prd"}
    trail = await leo.sd_audit(sd.sd_key)
    assert [e.actor for e in trail.edits] == ["api-user"]
    with pytest.raises(ValidationError):
        await leo.update_sd(sd.sd_key, {"priority": "urgent"})
    with pytest.raises(SdEditError) as refused:
        await leo.update_sd(sd.sd_key, {"status": "active"})
    assert refused.value.code == "TRANSITION_OWNED_FIELD"


async def test_the_sd_type_is_fixed_once_lead_to_plan_is_accepted(db_pool: asyncpg.Pool) -> None:
    """security -> docs would drop the SECURITY agent and the threshold from 90 to 60: once LEAD
    approved the SD for planning, the type is refused like a transition-owned field."""
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="security")
    # Still in LEAD: the type may change (and back), with the login recorded beside the actor.
    changed = await update(db_pool, sd.id, {"sd": {"sd_type": "feature"}}, actor="ada")
    assert changed["success"], changed
    await update(db_pool, sd.id, {"sd": {"sd_type": "security"}}, actor="ada")
    roles = await db_pool.fetch("SELECT actor, db_role FROM sd_changes WHERE sd_id = $1", sd.id)
    login = await db_pool.fetchval("SELECT session_user")
    assert [tuple(r) for r in roles] == [("ada", login), ("ada", login)]

    accepted = await call(db_pool, "LEAD-TO-PLAN", sd.id, context(expected_version=3))
    assert accepted["success"], accepted
    before = await state(db_pool, sd.id)
    refused = await update(db_pool, sd.id, {"sd": {"sd_type": "docs", "title": "Lower bar"}})
    assert refused["code"] == "TRANSITION_OWNED_FIELD", refused
    assert "sd.sd_type" in refused["error"] and "LEAD-TO-PLAN" in refused["error"]
    assert await state(db_pool, sd.id) == before
    # Other content still changes; giving the same type is no change at all.
    same = await update(db_pool, sd.id, {"sd": {"sd_type": "security", "title": "Clearer"}})
    assert same["success"] and set(same["changes"]) == {"sd.title"}, same
