"""`leo db adopt` on the command line, `leo doctor`'s adopt checks, and the settings."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from leo.infra.settings import InvalidSetting, Settings
from leo.services.doctor import schema_mode_check
from leo.services.doctor_adopt import check_adopted
from leo.services.doctor_report import Check
from tests.adopt.fixture import LEO_ACTOR, register_actor
from tests.cli.helpers import Leo


def leo_for(dsn: str, tmp_path: object, **extra: str) -> Leo:
    return Leo(
        env={"LEO_DATABASE_URL": dsn, "LEO_DATA_DIR": str(tmp_path), "COLUMNS": "250", **extra}
    )


async def test_the_adopt_command_checks_refuses_then_adopts(
    ehg: asyncpg.Connection, ehg_dsn: str, tmp_path: object
) -> None:
    leo = leo_for(ehg_dsn, tmp_path)
    refused = await leo("db", "adopt", "--check")
    assert refused.exit_code == 3, refused.output
    assert f"BLOCKER  actor {LEO_ACTOR}" in refused.stdout
    assert f"fix: add ('{LEO_ACTOR}', true, false)" in refused.stdout
    assert "1 blocker(s): not adopted." in refused.stdout

    await register_actor(ehg)
    dry = await leo("db", "adopt", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Would apply 0001_side_tables.sql" in dry.stdout
    assert await ehg.fetchval("SELECT to_regnamespace('leo')") is None

    done = await leo.json("db", "adopt")
    assert done["applied"] is True and "0001_side_tables.sql" in done["migrations"]
    again = await leo.json("db", "adopt")
    assert again["up_to_date"] is True and again["applied"] is False


async def test_migrate_is_refused_in_adopt_mode(ehg_dsn: str, tmp_path: object) -> None:
    result = await leo_for(ehg_dsn, tmp_path, LEO_SCHEMA_MODE="adopt")("db", "migrate")
    assert result.exit_code == 2
    assert "run `leo db adopt` instead" in result.stderr


async def test_doctor_rechecks_the_fingerprint_and_the_actor(
    ehg: asyncpg.Connection, ehg_dsn: str, tmp_path: object
) -> None:
    def by_name(checks: list[Check]) -> dict[str, Check]:
        return {c.name: c for c in checks}

    before = by_name(await check_adopted(ehg, "here", LEO_ACTOR))
    assert not before["postgres.adoption"].ok
    assert "leo db adopt" in before["postgres.adoption"].fix

    await register_actor(ehg)
    assert (await leo_for(ehg_dsn, tmp_path)("db", "adopt")).exit_code == 0
    healthy = by_name(await check_adopted(ehg, "here", LEO_ACTOR))
    assert all(c.ok for c in healthy.values()), healthy

    # Their schema moves: a new column on their handoffs table, a trigger disabled.
    await ehg.execute("ALTER TABLE sd_phase_handoffs ADD COLUMN reviewer text")
    await ehg.execute(
        "ALTER TABLE strategic_directives_v2 DISABLE TRIGGER enforce_progress_trigger"
    )
    moved = by_name(await check_adopted(ehg, "here", LEO_ACTOR))
    assert not moved["postgres.fingerprint"].ok
    assert moved["postgres.fingerprint"].detail == (
        "their schema changed since it was adopted: sd_phase_handoffs, strategic_directives_v2"
    )
    assert "leo db adopt --check" in moved["postgres.fingerprint"].fix
    # The actor taken off their allow-list again.
    await ehg.execute(
        "CREATE OR REPLACE FUNCTION handoff_actor_policy(p_created_by text) "
        "RETURNS TABLE (may_create boolean, skips_claim_check boolean) LANGUAGE sql IMMUTABLE "
        "AS $$ SELECT p_created_by = 'UNIFIED-HANDOFF-SYSTEM', false $$"
    )
    gone = by_name(await check_adopted(ehg, "here", LEO_ACTOR))
    assert not gone["postgres.actor"].ok
    assert "handoff_actor_policy" in gone["postgres.actor"].fix


def test_schema_mode_settings() -> None:
    native = Settings.from_env({})
    assert (native.schema_mode, native.adopt_actor, native.search_path) == (
        "native",
        "LEO-ORCHESTRATOR",
        None,
    )
    adopted = Settings.from_env({"LEO_SCHEMA_MODE": "adopt", "LEO_ADOPT_ACTOR": "LEO-BOT"})
    assert (adopted.schema_mode, adopted.adopt_actor, adopted.search_path) == (
        "adopt",
        "LEO-BOT",
        "leo, public",
    )
    assert schema_mode_check(adopted).detail == (
        "adopt: beside an EHG_Engineer database, actor LEO-BOT"
    )
    with pytest.raises(InvalidSetting, match="LEO_SCHEMA_MODE must be native or adopt"):
        Settings.from_env({"LEO_SCHEMA_MODE": "shadow"})


async def test_sd_creation_is_refused_in_adopt_mode(
    adopted: asyncpg.Connection, ehg_dsn: str, tmp_path: Path
) -> None:
    spec = tmp_path / "sd.yaml"
    spec.write_text("sd_key: SD-NEW-001\ntitle: New\nsd_type: feature\n")
    before = await adopted.fetchval("SELECT count(*) FROM public.strategic_directives_v2")
    result = await leo_for(ehg_dsn, tmp_path, LEO_SCHEMA_MODE="adopt")("sd", "create", str(spec))
    assert result.exit_code == 2
    assert "adopt mode (LEO_SCHEMA_MODE=adopt): SDs, PRDs and stories are created with" in (
        result.stderr
    )
    # Edits (PRD and story creation included) are refused by leo.fn_update_sd.
    edit = await adopted.fetchval(
        "SELECT fn_update_sd(p_sd_id => 'SD-FIX-006', p_changes => $1, p_actor => 'me')",
        {"prd": {"title": "x"}},
    )
    assert edit["success"] is False and edit["code"] == "INVALID_INPUT"
    assert "created and edited with the EHG_Engineer tooling" in edit["error"]
    assert await adopted.fetchval("SELECT count(*) FROM public.strategic_directives_v2") == before
