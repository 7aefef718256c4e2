"""An EHG_Engineer-shaped database for the adoption tests, built from examples/ehg_engineer/*.sql.

Nothing is fetched: the SQL files are this project's own re-statement of the documented schema
facts and trigger behaviour (see examples/ehg_engineer/README.md and the header of each file). `ehg_database` creates a fresh
database owned by `ehg_owner` (Supabase's `postgres` role: no superuser), loads the files as that
role, and returns the owner's DSN; the admin DSN is the suite's superuser.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from db.pool import connect

EHG_DIR = Path(__file__).resolve().parents[2] / "examples" / "ehg_engineer"
OWNER = "ehg_owner"
# The LEO actor the owner registers in their handoff_actor_policy.
LEO_ACTOR = "LEO-ORCHESTRATOR"


def dsn_with(dsn: str, *, database: str | None = None, user: str | None = None) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if user is not None:
        host = netloc.rpartition("@")[2]
        netloc = f"{user}@{host}"
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit(parts._replace(netloc=netloc, path=path))


async def create_ehg_database(admin_dsn: str, *, rows: bool = True) -> tuple[str, str]:
    """A new database holding the fixture; returns (its name, the owner's DSN)."""
    name = f"ehg_{uuid.uuid4().hex[:12]}"
    admin = await connect(admin_dsn)
    try:
        await admin.execute((EHG_DIR / "01_roles.sql").read_text())
        await admin.execute(f'CREATE DATABASE "{name}" OWNER {OWNER}')
    finally:
        await admin.close()
    conn = await connect(dsn_with(admin_dsn, database=name))
    try:
        await conn.execute(f"SET ROLE {OWNER}")
        for path in sorted(EHG_DIR.glob("*.sql")):
            if path.name == "01_roles.sql" or (not rows and path.name == "05_rows.sql"):
                continue
            await conn.execute(path.read_text())
    finally:
        await conn.close()
    return name, dsn_with(admin_dsn, database=name, user=OWNER)


async def drop_database(admin_dsn: str, name: str) -> None:
    admin = await connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def ehg_database(admin_dsn: str, *, rows: bool = True) -> AsyncIterator[str]:
    name, dsn = await create_ehg_database(admin_dsn, rows=rows)
    try:
        yield dsn
    finally:
        await drop_database(admin_dsn, name)


async def register_actor(conn: asyncpg.Connection, actor: str = LEO_ACTOR) -> None:
    """What the owner does before adopting: add the LEO actor to their allow-list (claim-subject)."""
    literal = await conn.fetchval("SELECT quote_literal($1)", actor)
    await conn.execute(
        "CREATE OR REPLACE FUNCTION handoff_actor_policy(p_created_by text) "
        "RETURNS TABLE (may_create boolean, skips_claim_check boolean) LANGUAGE sql IMMUTABLE AS $$ "
        "SELECT coalesce(bool_or(a.creates), false), coalesce(bool_or(a.skips), false) "
        "FROM (VALUES ('UNIFIED-HANDOFF-SYSTEM', true, false), ('SYSTEM_MIGRATION', true, true), "
        "('ADMIN_OVERRIDE', true, true), ('ORCHESTRATOR_AUTO_COMPLETE', true, true), "
        f"({literal}, true, false)) AS a(actor, creates, skips) WHERE a.actor = p_created_by; $$"
    )


# --- invariants: what adoption must leave untouched ---------------------------------------


async def table_checksums(conn: asyncpg.Connection, schema: str = "public") -> dict[str, str]:
    """md5 over every row (in primary-key/text order) of every table of `schema`."""
    tables = await conn.fetch(
        "SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1",
        schema,
    )
    sums = {}
    for row in tables:
        sums[row["name"]] = await conn.fetchval(
            f"SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
            f"FROM {row['name']} t"
        )
    return sums


CATALOGUE_SQL = {
    "functions": """
        SELECT p.oid::regprocedure::text AS name, pg_get_functiondef(p.oid) AS def,
               coalesce(p.proacl::text, '') AS acl, pg_get_userbyid(p.proowner) AS owner
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p') ORDER BY 1""",
    "triggers": """
        SELECT t.tgrelid::regclass::text AS tbl, t.tgname AS name, pg_get_triggerdef(t.oid) AS def,
               t.tgenabled::text AS enabled
        FROM pg_trigger t WHERE NOT t.tgisinternal ORDER BY 1, 2""",
    "policies": """
        SELECT schemaname, tablename, policyname, permissive, roles::text, cmd,
               coalesce(qual, '') AS qual, coalesce(with_check, '') AS with_check
        FROM pg_policies ORDER BY 1, 2, 3""",
    "relations": """
        SELECT c.oid::regclass::text AS name, c.relkind::text AS kind,
               coalesce(c.relacl::text, '') AS acl, c.relrowsecurity AS rls,
               c.relforcerowsecurity AS force_rls, pg_get_userbyid(c.relowner) AS owner,
               CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) ELSE '' END AS viewdef
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' ORDER BY 1""",
    "columns": """
        SELECT a.attrelid::regclass::text AS tbl, a.attname, format_type(a.atttypid, a.atttypmod) AS type,
               a.attnotnull, coalesce(pg_get_expr(d.adbin, d.adrelid), '') AS dflt
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2""",
    "constraints": """
        SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "indexes": """
        SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def
        FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
        WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1""",
    "schemas": """
        SELECT nspname, coalesce(nspacl::text, '') AS acl, pg_get_userbyid(nspowner) AS owner
        FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
        ORDER BY 1""",
    "database": """
        SELECT coalesce(datacl::text, '') AS acl FROM pg_database WHERE datname = current_database()""",
    "default_acls": """
        SELECT defaclrole::regrole::text, defaclnamespace::regnamespace::text, defaclobjtype::text,
               defaclacl::text FROM pg_default_acl ORDER BY 1, 2, 3""",
}


async def catalogue_dump(conn: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
    """Function and trigger definitions, policies, ACLs, columns, constraints and schemas."""
    return {part: [dict(r) for r in await conn.fetch(sql)] for part, sql in CATALOGUE_SQL.items()}


def digest(value: Any) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()


# --- an SD for LEO to drive ------------------------------------------------------------------


async def new_sd(
    conn: asyncpg.Connection,
    *,
    quality_checked: bool = True,
    stories: int = 2,
    blocked_story: bool = False,
    metadata: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """A fresh SD in their tables, ready for LEAD-TO-PLAN: (its id, a UUID string; its key).

    With a PRD (their content CHECKs satisfied) and stories with their required fields."""
    n = uuid.uuid4().hex[:8].upper()
    key = f"SD-ADOPT-{n}"
    sd_id = str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO public.strategic_directives_v2 (id, sd_key, title, status, category, "
        "priority, description, rationale, scope, current_phase, sd_type, quality_checked, "
        "success_criteria, metadata) VALUES ($1, $2, $3, 'active', 'infrastructure', 'high', "
        "'Adopted directive.', 'To test adoption.', 'Adoption.', 'LEAD_APPROVAL', "
        "'infrastructure', $4, '[\"it works\"]', $5)",
        sd_id,
        key,
        f"Adopted {n}",
        quality_checked,
        metadata or {},
    )
    await conn.execute(
        "INSERT INTO public.product_requirements_v2 (id, sd_id, directive_id, title, status, "
        "functional_requirements, acceptance_criteria, test_scenarios, executive_summary) "
        'VALUES ($1, $2, $2, $3, \'planning\', \'["a", "b", "c"]\', \'["x"]\', \'["t"]\', '
        "'The PRD.')",
        f"PRD-{key}",
        sd_id,
        f"PRD of {key}",
    )
    for i in range(1, stories + 1):
        await conn.execute(
            "INSERT INTO public.user_stories (story_key, prd_id, sd_id, title, user_role, "
            "user_want, user_benefit, status, validation_status, acceptance_criteria) "
            "VALUES ($1, $2, $3, $4, 'operator', 'a feature', 'it helps', $5, $6, "
            "'[\"it is done\"]')",
            f"{key}:US-{i:03d}",
            f"PRD-{key}",
            sd_id,
            f"Story {i}",
            "blocked" if blocked_story and i == 1 else "ready",
            "failed" if blocked_story and i == 1 else "pending",
        )
    return sd_id, key


async def register_session(conn: asyncpg.Connection, session_id: str) -> None:
    """A session of their tooling (their claim_sd refuses unregistered ones)."""
    await conn.execute(
        "INSERT INTO public.claude_sessions (session_id, status, heartbeat_at) "
        "VALUES ($1, 'idle', now())",
        session_id,
    )
