"""`leo db adopt --check` and `leo db adopt` on the EHG_Engineer-shaped fixture (issue 18).

Adoption changes nothing that was there: every pre-existing table's rows and the catalogue
(function and trigger definitions, policies, ACLs, columns, constraints) are the same after it;
a second run is a no-op, --dry-run writes nothing, and DROP SCHEMA leo CASCADE restores the
catalogue exactly. Their RPCs and claim functions still resolve with their own named arguments.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from db.adopt.check import check_adoption
from db.adopt.runner import AdoptRefused, adopt
from db.migrate import MigrationError, migrate
from db.pool import connect
from leo.dev_stack import Stack
from tests.adopt.fixture import (
    LEO_ACTOR,
    catalogue_dump,
    dsn_with,
    register_actor,
    table_checksums,
)


def without_leo(dump: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The catalogue dump minus schema leo itself (the one thing adoption adds)."""
    return {**dump, "schemas": [s for s in dump["schemas"] if s["nspname"] != "leo"]}


async def schemas(conn: asyncpg.Connection) -> list[str]:
    return [
        r["nspname"]
        for r in await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
            "AND nspname <> 'information_schema' ORDER BY 1"
        )
    ]


def blockers(check: Any) -> dict[str, str]:
    return {f"{f.topic}:{f.subject}": f.fix for f in check.blockers}


async def test_check_refuses_until_the_actor_is_registered_and_writes_nothing(
    ehg: asyncpg.Connection,
) -> None:
    rows, catalogue = await table_checksums(ehg), await catalogue_dump(ehg)

    refused = await check_adoption(ehg, LEO_ACTOR)

    assert blockers(refused) == {
        f"actor:{LEO_ACTOR}": f"add ('{LEO_ACTOR}', true, false) to the actor list in "
        "public.handoff_actor_policy (may create, still subject to the claim check)"
    }
    assert await table_checksums(ehg) == rows and await catalogue_dump(ehg) == catalogue
    await register_actor(ehg)
    ready = await check_adoption(ehg, LEO_ACTOR)
    assert ready.ok, ready.blockers
    found = {(f.topic, f.subject): f for f in ready.findings}
    # What the report covers: shapes, triggers, RLS, overloads and data shapes.
    assert found[("table", "sd_phase_handoffs")].level == "info"
    assert found[("trigger", "strategic_directives_v2.enforce_progress_trigger")].detail == (
        "present and enabled"
    )
    assert "owner reads past it" in found[("rls", "sd_transition_audit")].detail
    assert found[("overload", "release_sd(text,text)")].level == "info"
    assert found[("data", "sd_several_prds")].detail.startswith("1 ")
    assert found[("data", "idle_claims")].detail.startswith("1 ")
    assert found[("data", "results_null_phase")].detail.startswith("2 ")


async def test_check_names_each_blocker_with_its_fix(ehg: asyncpg.Connection) -> None:
    await register_actor(ehg)
    await ehg.execute("ALTER TABLE claude_sessions RENAME COLUMN sd_key TO claimed_sd")
    await ehg.execute("ALTER TABLE sd_transition_audit FORCE ROW LEVEL SECURITY")
    await ehg.execute("DROP FUNCTION release_sd(text, text)")
    await ehg.execute("DROP TRIGGER enforce_progress_trigger ON strategic_directives_v2")

    check = await check_adoption(ehg, LEO_ACTOR)

    assert set(blockers(check)) == {
        "table:claude_sessions",
        "rls:sd_transition_audit",
        "function:release_sd",
    }
    assert all(check.fix for check in check.blockers)
    table = next(f for f in check.blockers if f.subject == "claude_sessions")
    assert table.detail == "column sd_key is missing"
    missing = [f for f in check.findings if f.topic == "trigger" and f.level == "warning"]
    assert [f.subject for f in missing] == ["strategic_directives_v2.enforce_progress_trigger"]


async def test_check_refuses_a_superuser_and_a_native_leo_database(migrated_db: str) -> None:
    conn = await connect(migrated_db)
    try:
        check = await check_adoption(conn, LEO_ACTOR)
    finally:
        await conn.close()
    assert {"role", "schema"} <= {f.topic for f in check.blockers}
    assert any("leo db migrate" in f.fix for f in check.blockers)


async def test_adoption_changes_nothing_that_was_there(
    ehg: asyncpg.Connection, ehg_dsn: str, stack: Stack
) -> None:
    await register_actor(ehg)
    rows, catalogue = await table_checksums(ehg), await catalogue_dump(ehg)
    before_schemas = await schemas(ehg)

    # --dry-run: reports the plan, writes nothing.
    dry = await adopt(ehg, actor=LEO_ACTOR, dry_run=True)
    assert dry.plan.migrations and dry.plan.functions and not dry.applied
    assert await catalogue_dump(ehg) == catalogue and await schemas(ehg) == before_schemas

    first = await adopt(ehg, actor=LEO_ACTOR)
    assert first.applied
    assert await table_checksums(ehg) == rows
    assert without_leo(await catalogue_dump(ehg)) == catalogue
    assert await schemas(ehg) == sorted([*before_schemas, "leo"])
    assert await ehg.fetchval("SELECT fingerprint FROM leo.adoption") == first.check.fingerprint

    # A second run is a no-op: nothing planned, nothing written (leo's own rows included).
    leo_rows = await table_checksums(ehg, "leo")
    second = await adopt(ehg, actor=LEO_ACTOR)
    assert not second.plan.changed and not second.applied
    assert await table_checksums(ehg, "leo") == leo_rows
    assert await table_checksums(ehg) == rows

    # The exit path: dropping schema leo restores the catalogue exactly.
    await ehg.execute("DROP SCHEMA leo CASCADE")
    assert await catalogue_dump(ehg) == catalogue
    assert await table_checksums(ehg) == rows


async def test_adopt_refuses_on_blockers_and_writes_nothing(ehg: asyncpg.Connection) -> None:
    catalogue = await catalogue_dump(ehg)
    with pytest.raises(AdoptRefused, match="handoff_actor_policy") as refused:
        await adopt(ehg, actor=LEO_ACTOR)
    assert refused.value.check.blockers
    assert await catalogue_dump(ehg) == catalogue
    assert "leo" not in await schemas(ehg)


async def test_their_side_still_works_after_adoption(ehg: asyncpg.Connection, ehg_dsn: str) -> None:
    await register_actor(ehg)
    await adopt(ehg, actor=LEO_ACTOR)
    # Their tooling's calls, with their named arguments and their search_path.
    claim = await ehg.fetchval(
        "SELECT claim_sd(p_sd_id => 'SD-FIX-010', p_session_id => 'session_4e5f6a7b_tty5_505', "
        "p_track => 'A')"
    )
    assert claim["success"] is True
    released = await ehg.fetchval(
        "SELECT release_sd(p_session_id => 'session_4e5f6a7b_tty5_505', p_reason => 'manual')"
    )
    assert released["released_sd_key"] == "SD-FIX-010"
    # Their RPC inserts an in_progress audit row and updates it to completed.
    rpc = await ehg.fetchval(
        "SELECT fn_atomic_lead_to_plan_transition(p_sd_id => 'SD-FIX-002', "
        "p_session_id => 'session_4e5f6a7b_tty5_505', p_request_id => 'their-after-adopt')"
    )
    assert rpc["success"] is True
    assert (
        await ehg.fetchval(
            "SELECT status FROM sd_transition_audit WHERE request_id = 'their-after-adopt'"
        )
        == "completed"
    )
    # The audit update path they use by hand still works.
    await ehg.execute(
        "UPDATE sd_transition_audit SET status = 'completed', completed_at = now() "
        "WHERE status = 'in_progress'"
    )
    # PostgREST's roles see nothing of schema leo.
    for role in ("anon", "authenticated"):
        assert not await ehg.fetchval("SELECT has_schema_privilege($1, 'leo', 'USAGE')", role)


async def test_adopt_runs_as_the_owner_not_as_a_superuser(ehg_dsn: str, stack: Stack) -> None:
    conn = await connect(ehg_dsn)
    try:
        assert not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        await register_actor(conn)
        report = await adopt(conn, actor=LEO_ACTOR)
        assert report.applied
        owner = await conn.fetchval(
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'leo'"
        )
        assert owner == "ehg_owner"
    finally:
        await conn.close()
    assert dsn_with(ehg_dsn, user="x") != ehg_dsn


async def test_migrate_refuses_their_database_and_writes_nothing(ehg: asyncpg.Connection) -> None:
    catalogue = await catalogue_dump(ehg)
    with pytest.raises(MigrationError, match="leo db adopt --check"):
        await migrate(ehg)
    assert await catalogue_dump(ehg) == catalogue
    assert await ehg.fetchval("SELECT to_regclass('leo_schema_migrations')") is None
