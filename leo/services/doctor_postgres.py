"""`leo doctor`'s PostgreSQL checks: migrations current, the role's rights, the executors."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from db import health
from leo.services.doctor_report import Check, not_checked, reason_of

if TYPE_CHECKING:
    import asyncpg

GRANTS_FIX = (
    'as a DBA: psql "$LEO_ADMIN_DATABASE_URL" -v ON_ERROR_STOP=1 '
    "-f deploy/postgres/worker-grants.sql; then leo db migrate as the owner of LEO's tables, "
    "and log in as leo_worker_login (or any login granted leo_worker)"
)


async def check_postgres(conn: asyncpg.Connection, where: str) -> list[Check]:
    """Reachable (already: `conn` is open), migrations, rights, executors."""
    from db.migrate import migration_status

    version, ssl = await health.server_info(conn)
    checks = [
        Check(
            name="postgres.connection",
            ok=True,
            detail=f"{where} (PostgreSQL {version}, {'TLS' if ssl else 'no TLS'})",
        )
    ]
    import asyncpg

    try:
        status = await migration_status(conn)
    except asyncpg.InsufficientPrivilegeError:
        checks.append(
            Check(
                name="postgres.migrations",
                ok=False,
                level="warning",
                detail="this role cannot read leo_schema_migrations, so migrations were not checked",
                fix="run `leo doctor` once with the owner's LEO_DATABASE_URL, or "
                "grant this role read access (SELECT) to leo_schema_migrations and leo_schema_functions",
            )
        )
        checks.append(await _check_role(conn))
        checks.append(await _check_executors(conn))
        return checks
    problems = []
    if status.pending:
        problems.append(f"pending: {', '.join(status.pending)}")
    if status.edited:
        problems.append(f"edited after they were applied: {', '.join(status.edited)}")
    if status.unknown:
        problems.append(f"applied but not in this checkout: {', '.join(status.unknown)}")
    if not status.functions_current and not status.pending:
        problems.append("the SQL functions (db/functions) differ from the applied ones")
    fix = "leo db migrate"
    if status.edited:
        fix = (
            "restore the edited migration files (migrations are forward-only), then leo db migrate"
        )
    elif status.unknown:
        fix = "run a checkout as new as the database"
    checks.append(
        Check(
            name="postgres.migrations",
            ok=status.current,
            detail="; ".join(problems) or "all migrations applied, functions current",
            fix="" if status.current else fix,
        )
    )
    if status.pending and not await health.has_leo_schema(conn):
        for name in ("postgres.role", "sub_agents.executors"):
            checks.append(not_checked(name, "LEO's schema is not there yet"))
        return checks
    checks.append(await _check_role(conn))
    checks.append(await _check_executors(conn))
    return checks


async def _check_role(conn: asyncpg.Connection) -> Check:
    role, superuser, owner = await health.role_info(conn)
    missing = await health.missing_worker_rights(conn)
    if missing:
        return Check(
            name="postgres.role",
            ok=False,
            detail=f"role {role} lacks {'; '.join(missing)}",
            fix=GRANTS_FIX,
        )
    if superuser or owner:
        what = "a superuser" if superuser else "the owner of LEO's tables"
        return Check(
            name="postgres.role",
            ok=False,
            level="warning",
            detail=f"role {role} is {what}: fine for the embedded stack, more than a worker needs",
            fix=f"for a deployment, run workers as a member of leo_worker; {GRANTS_FIX}",
        )
    return Check(name="postgres.role", ok=True, detail=f"role {role} has a worker's rights")


def executor_problem(kind: str | None, ref: Any) -> str | None:
    """Why a catalogue row's executor cannot run here, or None when it can."""
    from leo.sub_agents.builtin import BUILTIN_RULES

    if kind is None:
        return None  # a row without an executor is refused by the orchestrator itself
    if kind == "builtin":
        return None if str(ref) in BUILTIN_RULES else f"unknown built-in rule {ref!r}"
    if kind == "python":
        module_name, _, attr = ref.partition(":") if isinstance(ref, str) else ("", "", "")
        if not module_name or not attr:
            return f"python executor_ref {ref!r} is not 'module:function'"
        try:
            target = getattr(importlib.import_module(module_name), attr)
        except Exception as exc:  # an import can raise anything
            return f"cannot import {ref}: {reason_of(exc)}"
        return None if callable(target) else f"{ref} is not callable"
    if kind == "command":
        if not (isinstance(ref, list) and ref and all(isinstance(a, str) for a in ref)):
            return "command executor_ref is not a JSON array of strings"
        program = sys.executable if ref[0] == "{python}" else ref[0]
        if os.sep in program:
            path = Path(program)
            return None if path.is_file() and os.access(path, os.X_OK) else f"{program} not found"
        return None if shutil.which(program) else f"{program} is not on PATH"
    return f"unknown executor_kind {kind!r}"


async def _check_executors(conn: asyncpg.Connection) -> Check:
    import asyncpg

    try:
        rows = await health.active_executors(conn)
    except asyncpg.InsufficientPrivilegeError:
        return Check(
            name="sub_agents.executors",
            ok=False,
            detail="this role cannot read the catalogue (leo_sub_agents)",
            fix=GRANTS_FIX,
        )
    problems = [
        f"{code}: {problem}"
        for code, kind, ref in rows
        if (problem := executor_problem(kind, ref)) is not None
    ]
    return Check(
        name="sub_agents.executors",
        ok=not problems,
        detail="; ".join(problems)
        or f"{len(rows)} active sub-agents, every executor resolvable here",
        fix=""
        if not problems
        else "install the command or module on the workers (and here), fix executor_ref in "
        "leo_sub_agents, or set active = false",
    )
