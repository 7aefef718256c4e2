"""The read-only queries `leo doctor` asks PostgreSQL: the connection, the role and its rights,
whether LEO's schema is there, and the active sub-agent catalogue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg

# The rights a worker needs (db/privileges.sql grants them to leo_worker), table by table:
# reads only; every write goes through the SECURITY DEFINER functions below.
WORKER_TABLE_RIGHTS: dict[str, tuple[str, ...]] = dict.fromkeys(
    (
        "leo_sub_agents",
        "sub_agent_execution_results",
        "sd_phase_handoffs",
        "sd_exec_reports",
        "retrospectives",
        "strategic_directives_v2",
        "product_requirements_v2",
        "user_stories",
        "sd_transition_audit",
        "claude_sessions",
    ),
    ("SELECT",),
)
# The entry points a worker calls, which the current role may not execute.
UNEXECUTABLE_WORKER_FUNCTIONS_SQL = """
SELECT p.oid::regprocedure::text AS name
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.prokind = 'f' AND p.prorettype <> 'trigger'::regtype
  AND (p.proname LIKE 'fn\\_atomic\\_%' OR p.proname LIKE 'fn\\_record\\_%'
       OR p.proname IN ('fn_commit_handoff', 'claim_sd', 'heartbeat_sd_claim', 'release_sd'))
  AND NOT has_function_privilege(current_user, p.oid, 'EXECUTE')
ORDER BY 1
"""


async def server_info(conn: asyncpg.Connection) -> tuple[str, bool]:
    """The server's version, and whether this connection uses TLS."""
    ssl = await conn.fetchval(
        "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)"
    )
    return str(await conn.fetchval("SHOW server_version")), bool(ssl)


async def has_leo_schema(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass('strategic_directives_v2') IS NOT NULL"))


async def role_info(conn: asyncpg.Connection) -> tuple[str, bool, bool]:
    """(role, is superuser, owns LEO's tables or is a member of their owner)."""
    row = await conn.fetchrow(
        "SELECT current_user AS role, r.rolsuper AS superuser, "
        "pg_has_role(current_user, c.relowner, 'USAGE') AS owner "
        "FROM pg_roles r, pg_class c "
        "WHERE r.rolname = current_user AND c.oid = 'strategic_directives_v2'::regclass"
    )
    assert row is not None
    return str(row["role"]), bool(row["superuser"]), bool(row["owner"])


async def missing_worker_rights(conn: asyncpg.Connection) -> list[str]:
    """What the current role lacks of a worker's rights, as "SELECT/INSERT on table" items."""
    missing = []
    for table, rights in WORKER_TABLE_RIGHTS.items():
        lacking = [
            right
            for right in rights
            if not await conn.fetchval(
                "SELECT to_regclass($1) IS NOT NULL AND has_table_privilege(current_user, $1, $2)",
                table,
                right,
            )
        ]
        if lacking:
            missing.append(f"{'/'.join(lacking)} on {table}")
    rows = await conn.fetch(UNEXECUTABLE_WORKER_FUNCTIONS_SQL)
    return missing + [f"EXECUTE on {row['name']}" for row in rows]


async def active_executors(conn: asyncpg.Connection) -> list[tuple[str, str | None, Any]]:
    """(code, executor_kind, executor_ref) of every active sub-agent."""
    rows = await conn.fetch(
        "SELECT code, executor_kind, executor_ref FROM leo_sub_agents WHERE active ORDER BY code"
    )
    return [(row["code"], row["executor_kind"], row["executor_ref"]) for row in rows]
