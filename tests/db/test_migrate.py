"""The migration runner against fresh scratch databases on the test server."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from db.migrate import MIGRATIONS_DIR, MigrationError, migrate
from db.pool import connect

SCHEMA = "0001_schema.sql"
# Test migrations take high numbers, so they sort after every real one, present or future.
NOTES = "9001_add_notes.sql"


def shipped() -> list[str]:
    return sorted(path.name for path in MIGRATIONS_DIR.glob("*.sql"))


def dsn_for_database(dsn: str, database: str) -> str:
    # The server's DSN (a URI, possibly ?host=/socket/dir) with another database path segment.
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture
async def scratch_dsn(migrated_db: str) -> AsyncIterator[str]:
    """A new, empty database on the same server, dropped afterwards."""
    name = f"leo_scratch_{uuid.uuid4().hex[:12]}"
    admin = await connect(migrated_db)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield dsn_for_database(migrated_db, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    """A private copy of db/migrations the test may add to or edit."""
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, target)
    return target


async def recorded(conn: asyncpg.Connection) -> dict[str, str]:
    rows = await conn.fetch("SELECT name, checksum FROM leo_schema_migrations ORDER BY version")
    return {row["name"]: row["checksum"] for row in rows}


async def test_migrating_twice_is_a_no_op(scratch_dsn: str, migrations_dir: Path) -> None:
    conn = await connect(scratch_dsn)
    try:
        first = await migrate(conn, migrations_dir=migrations_dir)
        assert first.applied == shipped()
        assert first.functions_applied is True
        functions_at = await conn.fetchval("SELECT applied_at FROM leo_schema_functions")

        second = await migrate(conn, migrations_dir=migrations_dir)

        assert second.applied == []
        assert second.functions_applied is False
        assert second.changed is False
        assert await recorded(conn) == {
            name: hashlib.sha256((migrations_dir / name).read_bytes()).hexdigest()
            for name in shipped()
        }
        assert await conn.fetchval("SELECT applied_at FROM leo_schema_functions") == functions_at
        # The schema and the functions really are there.
        assert await conn.fetchval("SELECT to_regclass('sd_transition_audit') IS NOT NULL")
        assert await conn.fetchval(
            "SELECT to_regprocedure('fn_atomic_exec_to_plan_transition(text,text,text,jsonb)')"
            " IS NOT NULL"
        )
    finally:
        await conn.close()


async def test_a_new_migration_is_applied_alone_on_the_next_run(
    scratch_dsn: str, migrations_dir: Path
) -> None:
    conn = await connect(scratch_dsn)
    try:
        await migrate(conn, migrations_dir=migrations_dir)
        (migrations_dir / NOTES).write_text(
            "CREATE TABLE leo_notes (id serial PRIMARY KEY, body text NOT NULL);"
        )

        report = await migrate(conn, migrations_dir=migrations_dir)

        assert report.applied == [NOTES]
        # Functions are re-applied after any migration, as a migration may drop what they use.
        assert report.functions_applied is True
        assert list(await recorded(conn)) == [*shipped(), NOTES]
        assert await conn.fetchval("SELECT to_regclass('leo_notes') IS NOT NULL")
    finally:
        await conn.close()


async def test_an_edited_applied_migration_stops_the_runner(
    scratch_dsn: str, migrations_dir: Path
) -> None:
    conn = await connect(scratch_dsn)
    try:
        await migrate(conn, migrations_dir=migrations_dir)
        before = await recorded(conn)
        schema = migrations_dir / SCHEMA
        schema.write_text(schema.read_text() + "\n-- a harmless-looking edit\n")
        (migrations_dir / NOTES).write_text("CREATE TABLE leo_notes (id int);")

        with pytest.raises(
            MigrationError, match=r"0001_schema\.sql was edited after it was applied"
        ):
            await migrate(conn, migrations_dir=migrations_dir)

        # Nothing after the edited file ran, and the record still holds the original checksum.
        assert await recorded(conn) == before
        assert await conn.fetchval("SELECT to_regclass('leo_notes') IS NULL")
        # The runner let go of its lock: a fixed checkout migrates at once.
        schema.write_text(schema.read_text().removesuffix("\n-- a harmless-looking edit\n"))
        report = await asyncio.wait_for(migrate(conn, migrations_dir=migrations_dir), 10)
        assert report.applied == [NOTES]
    finally:
        await conn.close()


async def test_the_edit_error_says_how_to_recover(scratch_dsn: str, migrations_dir: Path) -> None:
    conn = await connect(scratch_dsn)
    try:
        await migrate(conn, migrations_dir=migrations_dir)
        (migrations_dir / SCHEMA).write_text("-- rewritten\n")
        with pytest.raises(MigrationError) as caught:
            await migrate(conn, migrations_dir=migrations_dir)
        message = str(caught.value)
        assert "forward-only" in message
        assert "add a new numbered migration" in message
        assert "recorded checksum" in message
    finally:
        await conn.close()


async def test_two_concurrent_runners_apply_each_migration_exactly_once(
    scratch_dsn: str, migrations_dir: Path
) -> None:
    # A migration with a visible side effect: applied twice, it would insert two rows.
    (migrations_dir / "9001_count_runs.sql").write_text(
        "CREATE TABLE leo_migration_runs (n int);\nINSERT INTO leo_migration_runs VALUES (1);\n"
    )
    first, second = await connect(scratch_dsn), await connect(scratch_dsn)
    try:
        reports = await asyncio.gather(
            migrate(first, migrations_dir=migrations_dir),
            migrate(second, migrations_dir=migrations_dir),
        )

        applied = [name for report in reports for name in report.applied]
        assert sorted(applied) == [*shipped(), "9001_count_runs.sql"]
        # One runner did the work; the other waited its turn and found nothing to do.
        assert sorted(len(report.applied) for report in reports) == [0, len(shipped()) + 1]
        assert await first.fetchval("SELECT count(*) FROM leo_migration_runs") == 1
        assert list(await recorded(first)) == [*shipped(), "9001_count_runs.sql"]
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize(
    "bad_name",
    ["1_schema.sql", "9001_Add_Notes.sql", "9001-add-notes.sql", "abcd_notes.sql", "9001_.sql"],
)
async def test_a_badly_named_migration_file_is_refused(
    scratch_dsn: str, migrations_dir: Path, bad_name: str
) -> None:
    (migrations_dir / bad_name).write_text("CREATE TABLE leo_notes (id int);")
    conn = await connect(scratch_dsn)
    try:
        with pytest.raises(MigrationError, match=r"NNNN_<what>\.sql"):
            await migrate(conn, migrations_dir=migrations_dir)
        # Refused before touching the database: not even the bookkeeping table exists.
        assert await conn.fetchval("SELECT to_regclass('leo_schema_migrations') IS NULL")
        assert await conn.fetchval("SELECT to_regclass('leo_notes') IS NULL")
    finally:
        await conn.close()


async def test_two_migrations_with_one_number_are_refused(
    scratch_dsn: str, migrations_dir: Path
) -> None:
    (migrations_dir / "0001_other.sql").write_text("CREATE TABLE leo_notes (id int);")
    conn = await connect(scratch_dsn)
    try:
        with pytest.raises(MigrationError, match="share a number"):
            await migrate(conn, migrations_dir=migrations_dir)
        assert await conn.fetchval("SELECT to_regclass('leo_schema_migrations') IS NULL")
    finally:
        await conn.close()


async def test_a_database_newer_than_the_checkout_is_refused(
    scratch_dsn: str, migrations_dir: Path
) -> None:
    conn = await connect(scratch_dsn)
    try:
        (migrations_dir / NOTES).write_text("CREATE TABLE leo_notes (id int);")
        await migrate(conn, migrations_dir=migrations_dir)
        (migrations_dir / NOTES).unlink()
        with pytest.raises(MigrationError, match="older than the database"):
            await migrate(conn, migrations_dir=migrations_dir)
    finally:
        await conn.close()


async def test_a_failing_migration_is_rolled_back_and_not_recorded(
    scratch_dsn: str, migrations_dir: Path
) -> None:
    (migrations_dir / "9001_broken.sql").write_text(
        "CREATE TABLE leo_notes (id int);\nINSERT INTO leo_notes VALUES ('not a number');\n"
    )
    conn = await connect(scratch_dsn)
    try:
        with pytest.raises(asyncpg.PostgresError):
            await migrate(conn, migrations_dir=migrations_dir)
        # The earlier migration stays applied; the broken one left nothing behind.
        assert list(await recorded(conn)) == shipped()
        assert await conn.fetchval("SELECT to_regclass('leo_notes') IS NULL")
        (migrations_dir / "9001_broken.sql").write_text("CREATE TABLE leo_notes (id int);\n")
        report = await asyncio.wait_for(migrate(conn, migrations_dir=migrations_dir), 10)
        assert report.applied == ["9001_broken.sql"]
    finally:
        await conn.close()
