"""`leo db adopt`: LEO's objects in schema `leo` of an EHG_Engineer database, nothing else.

Its own migration track: `db/adopt/migrations/NNNN_<what>.sql` (forward-only, recorded with
their checksums in `leo.schema_migrations`), then `db/adopt/functions/*.sql` (views and
functions, re-applied when their combined checksum changes, recorded in `leo.schema_functions`)
and `db/adopt/privileges.sql` (grants on `leo` objects only). The preflight
(`db.adopt.check`) runs first and refuses on blockers; the schema fingerprint it takes is stored
in `leo.adoption`, so that `leo doctor` notices when their schema moves. A second run with
nothing new writes nothing; `--dry-run` reports what would be applied and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from db.adopt.check import AdoptCheck, check_adoption
from db.migrate import MigrationError, discover_migrations, functions_checksum

if TYPE_CHECKING:
    import asyncpg

ADOPT_DIR = Path(__file__).resolve().parent
MIGRATIONS_DIR = ADOPT_DIR / "migrations"
FUNCTIONS_DIR = ADOPT_DIR / "functions"
PRIVILEGES_FILE = ADOPT_DIR / "privileges.sql"
ADOPT_LOCK_KEY = 0x1E0_AD09_7  # any constant shared by every adopt runner
SEARCH_PATH = "SET LOCAL search_path = leo, public"

BOOKKEEPING_SQL = """
CREATE SCHEMA IF NOT EXISTS leo;
REVOKE ALL ON SCHEMA leo FROM PUBLIC;
CREATE TABLE IF NOT EXISTS leo.schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS leo.schema_functions (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS leo.adoption (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    actor       text NOT NULL,
    fingerprint text NOT NULL,
    shape       jsonb NOT NULL,
    adopted_at  timestamptz NOT NULL DEFAULT now()
);
"""


class AdoptRefused(RuntimeError):
    """The preflight found blockers; nothing was written."""

    def __init__(self, check: AdoptCheck) -> None:
        lines = [f"{f.subject}: {f.detail} (fix: {f.fix})" for f in check.blockers]
        super().__init__("adoption refused: " + "; ".join(lines))
        self.check = check


@dataclass
class AdoptPlan:
    migrations: list[str] = field(default_factory=list)
    functions: bool = False
    fingerprint: bool = (
        False  # their schema's fingerprint (or the actor) differs from the stored one
    )

    @property
    def changed(self) -> bool:
        return bool(self.migrations) or self.functions or self.fingerprint


@dataclass
class AdoptReport:
    check: AdoptCheck
    plan: AdoptPlan
    dry_run: bool
    applied: bool = False


def function_files(directory: Path = FUNCTIONS_DIR) -> list[Path]:
    """Views and functions in name order (files are numbered where order matters)."""
    return [*sorted(directory.glob("*.sql")), PRIVILEGES_FILE]


async def adoption_plan(
    conn: asyncpg.Connection,
    check: AdoptCheck,
    actor: str,
    *,
    migrations_dir: Path = MIGRATIONS_DIR,
    functions_dir: Path = FUNCTIONS_DIR,
) -> AdoptPlan:
    """What `adopt` would do now (read-only)."""
    migrations = discover_migrations(migrations_dir)
    checksum = functions_checksum(function_files(functions_dir))
    if not await conn.fetchval("SELECT to_regclass('leo.schema_migrations') IS NOT NULL"):
        return AdoptPlan([m.name for m in migrations], functions=True, fingerprint=True)
    applied = {
        r["version"]: r["checksum"]
        for r in await conn.fetch("SELECT version, checksum FROM leo.schema_migrations")
    }
    unknown = sorted(set(applied) - {m.version for m in migrations})
    if unknown:
        raise MigrationError(
            f"schema leo has adopt migrations {unknown} that are not in {migrations_dir}; "
            "this checkout is older than the adoption"
        )
    plan = AdoptPlan()
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is None:
            plan.migrations.append(migration.name)
        elif recorded != migration.checksum:
            raise MigrationError(
                f"{migration.name} was edited after it was applied; adopt migrations are "
                "forward-only: restore the file and add a new numbered one"
            )
    current = await conn.fetchval("SELECT checksum FROM leo.schema_functions")
    # LEO's roles created by a DBA after the adoption get their grants on the next run.
    ungranted = await conn.fetchval(
        "SELECT coalesce(bool_or(NOT has_schema_privilege(rolname, 'leo', 'USAGE')), false) "
        "FROM pg_roles WHERE rolname IN ('leo_worker', 'leo_caller')"
    )
    plan.functions = current != checksum or bool(plan.migrations) or ungranted
    stored = await conn.fetchrow("SELECT actor, fingerprint FROM leo.adoption")
    plan.fingerprint = stored is None or tuple(stored) != (actor, check.fingerprint)
    return plan


async def adopt(
    conn: asyncpg.Connection,
    *,
    actor: str,
    dry_run: bool = False,
    migrations_dir: Path = MIGRATIONS_DIR,
    functions_dir: Path = FUNCTIONS_DIR,
) -> AdoptReport:
    """Check, then (unless `dry_run`) apply what is new. Raises `AdoptRefused` on blockers."""
    check = await check_adoption(conn, actor)
    if not check.ok:
        raise AdoptRefused(check)
    plan = await adoption_plan(
        conn, check, actor, migrations_dir=migrations_dir, functions_dir=functions_dir
    )
    report = AdoptReport(check=check, plan=plan, dry_run=dry_run)
    if dry_run or not plan.changed:
        return report
    await conn.execute("SELECT pg_advisory_lock($1)", ADOPT_LOCK_KEY)
    try:
        # Another runner may have finished while this one waited: plan again under the lock.
        plan = report.plan = await adoption_plan(
            conn, check, actor, migrations_dir=migrations_dir, functions_dir=functions_dir
        )
        if plan.changed:
            async with conn.transaction():
                await conn.execute(SEARCH_PATH)
                await conn.execute(BOOKKEEPING_SQL)
                for migration in discover_migrations(migrations_dir):
                    if migration.name in plan.migrations:
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO leo.schema_migrations (version, name, checksum) "
                            "VALUES ($1, $2, $3)",
                            migration.version,
                            migration.name,
                            migration.checksum,
                        )
                if plan.functions:
                    files = function_files(functions_dir)
                    for path in files:
                        await conn.execute(path.read_text())
                    await conn.execute(
                        "INSERT INTO leo.schema_functions (id, checksum) VALUES (true, $1) "
                        "ON CONFLICT (id) DO UPDATE SET checksum = $1, applied_at = now()",
                        functions_checksum(files),
                    )
                await conn.execute(
                    "INSERT INTO leo.adoption (id, actor, fingerprint, shape) "
                    "VALUES (true, $1, $2, $3) ON CONFLICT (id) DO UPDATE SET actor = $1, "
                    "fingerprint = $2, shape = $3, adopted_at = now()",
                    actor,
                    check.fingerprint,
                    check.shape,
                )
            report.applied = True
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADOPT_LOCK_KEY)
    return report


async def adoption_state(conn: asyncpg.Connection) -> asyncpg.Record | None:
    """The stored adoption (actor, fingerprint, shape), or None when this is not adopted."""
    if not await conn.fetchval("SELECT to_regclass('leo.adoption') IS NOT NULL"):
        return None
    return await conn.fetchrow("SELECT actor, fingerprint, shape, adopted_at FROM leo.adoption")
