from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from db.migrate import discover_migrations
from db.pool import connect
from leo.dev_stack import EmbeddedPostgres, free_port
from tests.cli.helpers import Leo, assert_one_error_line

MIGRATION_NAMES = [m.name for m in discover_migrations()]


@pytest.fixture
async def empty_database(db_pool: asyncpg.Pool, migrated_db: str) -> AsyncIterator[str]:
    """A new, empty database on the suite's server; dropped afterwards."""
    name = f"leo_cli_{uuid.uuid4().hex[:12]}"
    try:
        await db_pool.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.InsufficientPrivilegeError:
        pytest.skip("the test database's user may not create databases")
    yield urlunsplit(urlsplit(migrated_db)._replace(path=f"/{name}"))
    await db_pool.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


async def test_db_migrate_on_a_migrated_database_is_up_to_date(leo: Leo, migrated_db: str) -> None:
    await leo("db", "migrate")  # in case a function file changed since the session started

    text = await leo("db", "migrate")
    assert text.exit_code == 0, text.output
    assert "Database is up to date." in text.stdout
    assert "Applied" not in text.stdout

    data = await leo.json("db", "migrate")
    assert data == {
        "database_url": migrated_db,
        "applied": [],
        "functions_applied": False,
        "up_to_date": True,
    }


async def test_db_migrate_applies_everything_to_an_empty_database_once(
    leo: Leo, empty_database: str
) -> None:
    env = {"LEO_DATABASE_URL": empty_database}

    first = await leo("db", "migrate", env=env)
    assert first.exit_code == 0, first.output
    for name in MIGRATION_NAMES:
        assert f"Applied {name}" in first.stdout
    assert "Applied the SQL functions" in first.stdout

    second = await leo("db", "migrate", "--json", env=env)
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["up_to_date"] is True

    conn = await connect(empty_database)
    try:
        recorded = await conn.fetch("SELECT name FROM leo_schema_migrations ORDER BY version")
        assert [row["name"] for row in recorded] == MIGRATION_NAMES
        assert await conn.fetchval("SELECT to_regproc('fn_atomic_exec_to_plan_transition')")
    finally:
        await conn.close()


async def test_db_migrate_refuses_a_database_whose_applied_migration_differs(
    leo: Leo, empty_database: str
) -> None:
    env = {"LEO_DATABASE_URL": empty_database}
    assert (await leo("db", "migrate", env=env)).exit_code == 0
    conn = await connect(empty_database)
    try:
        await conn.execute(
            "UPDATE leo_schema_migrations SET checksum = repeat('0', 64) WHERE name = $1",
            MIGRATION_NAMES[0],
        )
    finally:
        await conn.close()

    result = await leo("db", "migrate", env=env)

    assert_one_error_line(result, 3, f"{MIGRATION_NAMES[0]} was edited after it was applied")


async def test_commands_on_an_unmigrated_database_say_to_migrate(
    leo: Leo, empty_database: str
) -> None:
    result = await leo("sd", "show", "SD-ANY", env={"LEO_DATABASE_URL": empty_database})
    assert_one_error_line(result, 3, "has no LEO schema", "run `leo db migrate`")


async def test_db_migrate_on_an_unreachable_database_fails_with_a_redacted_url(leo: Leo) -> None:
    url = f"postgresql://leo:s3cret@127.0.0.1:{free_port()}/leo"

    result = await leo("db", "migrate", env={"LEO_DATABASE_URL": url})

    line = assert_one_error_line(
        result, 3, f"cannot connect to PostgreSQL at {url.replace('s3cret', '***')}"
    )
    assert "s3cret" not in line


async def test_db_migrate_without_a_url_migrates_the_embedded_database(
    leo: Leo, tmp_path: Path
) -> None:
    data_dir = tmp_path / "embedded"
    env: dict[str, str | None] = {"LEO_DATABASE_URL": None, "LEO_DATA_DIR": str(data_dir)}
    pid_file = data_dir / "pgdata" / "postmaster.pid"

    # Nothing runs yet: the command starts PostgreSQL, migrates it and stops it again.
    first = await leo("db", "migrate", env=env)
    assert first.exit_code == 0, first.output
    assert f"Applied {MIGRATION_NAMES[0]}" in first.stdout
    assert not pid_file.exists()

    # The data survived the stop; a server that is already running is reused and left running.
    running = EmbeddedPostgres(data_dir).start()
    try:
        second = await leo("db", "migrate", env=env)
        assert second.exit_code == 0, second.output
        assert "Database is up to date." in second.stdout
        assert running.url is not None
        conn = await connect(running.url)
        assert await conn.fetchval("SELECT count(*) FROM leo_schema_migrations") == len(
            MIGRATION_NAMES
        )
        await conn.close()
    finally:
        running.stop()
    assert not pid_file.exists()
