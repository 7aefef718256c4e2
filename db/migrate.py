"""Applies the numbered migrations, then (re)creates the SQL functions.

Migrations in `db/migrations/NNNN_<what>.sql` are forward-only: each runs in its own
transaction and is recorded with its checksum, and an applied file that has since been edited
stops the runner with an error. Functions in `db/functions/*.sql` are `CREATE OR REPLACE` and
are re-applied whenever their combined checksum changes. `privileges.sql` (roles and grants)
is applied last, on every run. A session-level advisory lock makes
two concurrent runners take turns; running twice is a no-op.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg

DB_DIR = Path(__file__).resolve().parent
MIGRATIONS_DIR = DB_DIR / "migrations"
FUNCTIONS_DIR = DB_DIR / "functions"
# Roles and grants (least privilege); applied after the functions on every run.
PRIVILEGES_FILE = DB_DIR / "privileges.sql"
# Applied first: the others call into these.
FUNCTIONS_FIRST = ("common.sql", "claims.sql")
MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
MIGRATION_LOCK_KEY = 0x1E0_5C4E_3A  # any constant shared by every runner

BOOKKEEPING_SQL = """
CREATE TABLE IF NOT EXISTS leo_schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS leo_schema_functions (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


class MigrationError(RuntimeError):
    """The database's recorded migrations disagree with the files on disk."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass
class MigrationReport:
    applied: list[str] = field(default_factory=list)
    functions_applied: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.applied) or self.functions_applied


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_NAME.match(path.name)
        if match is None:
            raise MigrationError(
                f"{path.name}: migration files are named NNNN_<what>.sql (lower case)"
            )
        migrations.append(Migration(match.group(1), path.name, path))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a number in {directory}")
    return migrations


def function_files(directory: Path = FUNCTIONS_DIR) -> list[Path]:
    files = sorted(directory.glob("*.sql"))
    first = [p for name in FUNCTIONS_FIRST for p in files if p.name == name]
    return first + [p for p in files if p not in first]


def read_sql(path: Path) -> str:
    return path.read_text()


def functions_checksum(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass
class MigrationStatus:
    """How the database's recorded migrations compare with the files (nothing is changed)."""

    pending: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # recorded, but no file: an older checkout
    functions_current: bool = False

    @property
    def current(self) -> bool:
        return not (self.pending or self.edited or self.unknown) and self.functions_current


async def migration_status(
    conn: asyncpg.Connection,
    *,
    migrations_dir: Path = MIGRATIONS_DIR,
    functions_dir: Path = FUNCTIONS_DIR,
) -> MigrationStatus:
    """Read-only: what `migrate` would apply, and what it would refuse (edited files)."""
    migrations = discover_migrations(migrations_dir)
    status = MigrationStatus()
    has_table = await conn.fetchval("SELECT to_regclass('leo_schema_migrations') IS NOT NULL")
    if not has_table:
        status.pending = [m.name for m in migrations]
        return status
    applied = {
        row["version"]: row["checksum"]
        for row in await conn.fetch("SELECT version, checksum FROM leo_schema_migrations")
    }
    on_disk = {m.version for m in migrations}
    status.unknown = sorted(set(applied) - on_disk)
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is None:
            status.pending.append(migration.name)
        elif recorded != migration.checksum:
            status.edited.append(migration.name)
    current = await conn.fetchval("SELECT checksum FROM leo_schema_functions")
    status.functions_current = current == functions_checksum(function_files(functions_dir))
    return status


async def refuse_foreign_leo_schema(conn: asyncpg.Connection) -> None:
    """An EHG_Engineer database (their LEO tables, no bookkeeping of ours) is adopted, never
    migrated: migrating would write into their schema. Raises before anything is written."""
    foreign = await conn.fetchval(
        "SELECT to_regclass('strategic_directives_v2') IS NOT NULL "
        "AND to_regclass('leo_schema_migrations') IS NULL"
    )
    if foreign:
        raise MigrationError(
            "this database already has LEO tables that `leo db migrate` did not create (an "
            "EHG_Engineer database?); nothing was written. Run LEO beside it with "
            "`leo db adopt --check`, then `leo db adopt` (docs/adoption.md)"
        )


async def migrate(
    conn: asyncpg.Connection,
    *,
    migrations_dir: Path = MIGRATIONS_DIR,
    functions_dir: Path = FUNCTIONS_DIR,
    privileges_file: Path | None = PRIVILEGES_FILE,
) -> MigrationReport:
    """Bring the database up to date. Safe to run concurrently and repeatedly."""
    migrations = discover_migrations(migrations_dir)
    report = MigrationReport()
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await refuse_foreign_leo_schema(conn)
        await conn.execute(BOOKKEEPING_SQL)
        applied = {
            row["version"]: row
            for row in await conn.fetch("SELECT version, name, checksum FROM leo_schema_migrations")
        }
        on_disk = {m.version for m in migrations}
        missing = sorted(set(applied) - on_disk)
        if missing:
            raise MigrationError(
                f"the database has migrations {missing} that are not in {migrations_dir}; "
                "this checkout is older than the database"
            )
        for migration in migrations:
            recorded = applied.get(migration.version)
            if recorded is not None:
                if recorded["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"{migration.name} was edited after it was applied "
                        f"(recorded checksum {recorded['checksum'][:12]}, "
                        f"file {migration.checksum[:12]}); migrations are forward-only: "
                        "restore the file and add a new numbered migration"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO leo_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            report.applied.append(migration.name)

        files = function_files(functions_dir)
        checksum = functions_checksum(files)
        current = await conn.fetchval("SELECT checksum FROM leo_schema_functions")
        if current != checksum or report.applied:
            async with conn.transaction():
                for path in files:
                    await conn.execute(path.read_text())
                await conn.execute(
                    "INSERT INTO leo_schema_functions (id, checksum) VALUES (true, $1) "
                    "ON CONFLICT (id) DO UPDATE SET checksum = $1, applied_at = now()",
                    checksum,
                )
                if privileges_file is not None:
                    # In the same transaction: a new SECURITY DEFINER function is never
                    # committed with PostgreSQL's default EXECUTE for PUBLIC.
                    await conn.execute(read_sql(privileges_file))
            report.functions_applied = True
        elif privileges_file is not None:
            # Every run: a function or table added since needs its grants (and PUBLIC's taken
            # away), and roles created by a DBA after the last run get theirs.
            async with conn.transaction():
                await conn.execute(read_sql(privileges_file))
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return report
