"""`leo db adopt --check`: can LEO run beside this EHG_Engineer database? Read-only.

Runs in a READ ONLY transaction and reports, for every object in `db.adopt.contract`: the
table's columns, types and CHECK value sets; their triggers (present, enabled); RLS and this
role's rights; their functions and any overload that would make a call ambiguous; and the data
shapes LEO's read views normalise. A finding at level "blocker" comes with a one-line fix, and
`leo db adopt` refuses while any is left. The schema fingerprint is taken here too.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from db.adopt.contract import (
    FUNCTIONS,
    LEO_CALLS,
    LEO_MORE_CALLS,
    NATIVE_BOOKKEEPING,
    SCHEMA,
    TABLES,
    TableContract,
)

if TYPE_CHECKING:
    import asyncpg

Level = Literal["blocker", "warning", "info"]
# The argument types of LEO's calls (every other argument is text).
ARG_TYPES = {
    "p_transition_context": "jsonb",
    "p_sub_agent_results": "jsonb",
    "p_accepted": "boolean",
}


@dataclass(frozen=True)
class Finding:
    topic: str  # role, schema, table, check, trigger, rls, function, overload, actor, data
    subject: str
    level: Level
    detail: str
    fix: str = ""


@dataclass
class AdoptCheck:
    role: str = ""
    findings: list[Finding] = field(default_factory=list)
    shape: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return schema_fingerprint(self.shape)

    @property
    def blockers(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "blocker"]

    @property
    def ok(self) -> bool:
        return not self.blockers

    def add(self, topic: str, subject: str, level: Level, detail: str, fix: str = "") -> None:
        self.findings.append(Finding(topic, subject, level, detail, fix))


def schema_fingerprint(shape: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


COLUMNS_SQL = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null
FROM pg_attribute a
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"""
CHECKS_SQL = """
SELECT c.conname AS name, pg_get_constraintdef(c.oid) AS def,
       ARRAY(SELECT a.attname FROM pg_attribute a
             WHERE a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey))::text[] AS columns
FROM pg_constraint c WHERE c.conrelid = $1::regclass AND c.contype = 'c' ORDER BY c.conname"""
TRIGGERS_SQL = """
SELECT t.tgname AS name, t.tgenabled::text AS enabled, p.proname AS function,
       md5(p.prosrc) AS body
FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
WHERE t.tgrelid = $1::regclass AND NOT t.tgisinternal ORDER BY t.tgname"""
TABLE_SQL = """
SELECT c.relrowsecurity AS rls, c.relforcerowsecurity AS force_rls,
       pg_has_role(current_user, c.relowner, 'USAGE') AS owner,
       has_table_privilege(c.oid, 'SELECT') AS can_select,
       has_table_privilege(c.oid, 'INSERT') AS can_insert,
       has_table_privilege(c.oid, 'UPDATE') AS can_update
FROM pg_class c WHERE c.oid = $1::regclass"""
FUNCTIONS_SQL = """
SELECT p.oid::regprocedure::text AS signature, p.proname AS name,
       coalesce(p.proargnames, '{}')::text[] AS arg_names,
       coalesce(p.proargmodes::text[], '{}')::text[] AS arg_modes,
       ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) AS t)::text[] AS arg_types,
       p.pronargs AS nargs, p.pronargdefaults AS ndefaults, md5(p.prosrc) AS body
FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.proname = ANY ($1::text[])
ORDER BY 1"""
ROLE_SQL = """
SELECT current_user AS role, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls,
       has_database_privilege(current_database(), 'CREATE') AS can_create
FROM pg_roles r WHERE r.rolname = current_user"""
LEO_SCHEMA_SQL = """
SELECT pg_has_role(current_user, n.nspowner, 'USAGE') AS owned,
       to_regclass('leo.schema_migrations') IS NOT NULL AS bookkept
FROM pg_namespace n WHERE n.nspname = $1"""
# Data shapes the read views normalise: how many rows of each kind (reported, never blocking).
DATA_SQL: dict[str, tuple[str, str]] = {
    "sd_id_not_key": (
        "SELECT count(*) FROM public.strategic_directives_v2 WHERE id <> sd_key",
        "SDs whose id is not their sd_key (LEO resolves either)",
    ),
    "sd_null_phase": (
        "SELECT count(*) FROM public.strategic_directives_v2 WHERE current_phase IS NULL "
        "OR transition_version IS NULL OR metadata IS NULL",
        "SDs with a NULL current_phase, transition_version or metadata (read with defaults)",
    ),
    "sd_several_prds": (
        "SELECT count(*) FROM (SELECT coalesce(sd_id, directive_id) FROM "
        "public.product_requirements_v2 GROUP BY 1 HAVING count(*) > 1) x",
        "SDs with several PRDs (LEO uses one: see docs/adoption.md)",
    ),
    "prd_directive_only": (
        "SELECT count(*) FROM public.product_requirements_v2 "
        "WHERE sd_id IS NULL AND directive_id IS NOT NULL",
        "PRDs linked only through directive_id",
    ),
    "idle_claims": (
        "SELECT count(*) FROM public.claude_sessions WHERE status = 'idle' AND sd_key IS NOT NULL",
        "idle sessions that still hold a claim (LEO counts them as claimed)",
    ),
    "results_null_phase": (
        "SELECT count(*) FROM public.sub_agent_execution_results WHERE phase IS NULL",
        "sub-agent results with a NULL phase (read as UNKNOWN)",
    ),
}


def base_type(type_name: str) -> str:
    return re.sub(r"\(.*\)", "", type_name).strip()


async def check_adoption(conn: asyncpg.Connection, actor: str) -> AdoptCheck:
    """The full preflight, in one READ ONLY transaction: nothing is written."""
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        report = AdoptCheck()
        await _check_role_and_schemas(conn, report)
        present = []
        for table in TABLES:
            if await _check_table(conn, table, report):
                present.append(table)
        await _check_functions(conn, actor, report)
        readable = not any(f.topic == "rls" and f.level == "blocker" for f in report.findings)
        if len(present) == len(TABLES) and readable:
            await _check_data(conn, report)
        return report


async def _check_role_and_schemas(conn: asyncpg.Connection, report: AdoptCheck) -> None:
    role = await conn.fetchrow(ROLE_SQL)
    assert role is not None
    report.role = role["role"]
    if role["superuser"]:
        report.add(
            "role", role["role"], "blocker",
            f"{role['role']} is a superuser; adoption runs as the owner of their tables",
            "connect as the role that owns their tables (on Supabase: postgres), not a superuser",
        )  # fmt: skip
    if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"public.{NATIVE_BOOKKEEPING}"):
        report.add(
            "schema", "public", "blocker",
            "this is a native LEO database (public.leo_schema_migrations exists)",
            "use `leo db migrate` (LEO_SCHEMA_MODE=native) for this database",
        )  # fmt: skip
    leo = await conn.fetchrow(LEO_SCHEMA_SQL, SCHEMA)
    if leo is None:
        if not role["can_create"]:
            report.add(
                "role", role["role"], "blocker",
                f"{role['role']} may not create schemas in this database",
                f"as the database owner: GRANT CREATE ON DATABASE <db> TO {role['role']}",
            )  # fmt: skip
    elif not leo["bookkept"]:
        report.add(
            "schema", SCHEMA, "blocker",
            "a schema named leo exists and is not LEO's (no leo.schema_migrations)",
            "rename or drop that schema; LEO keeps every object of its own in schema leo",
        )  # fmt: skip
    elif not leo["owned"]:
        report.add(
            "schema", SCHEMA, "blocker",
            f"schema leo belongs to another role than {role['role']}",
            "run `leo db adopt` as the role that adopted this database",
        )  # fmt: skip
    else:
        report.add("schema", SCHEMA, "info", "adopted before: leo db adopt applies what is new")


async def _check_table(conn: asyncpg.Connection, table: TableContract, report: AdoptCheck) -> bool:
    name = f"public.{table.name}"
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name):
        report.add(
            "table", table.name, "blocker", "missing",
            f"this is not an EHG_Engineer database, or {table.name} was renamed",
        )  # fmt: skip
        return False
    columns = {r["name"]: r for r in await conn.fetch(COLUMNS_SQL, name)}
    checks = await conn.fetch(CHECKS_SQL, name)
    triggers = await conn.fetch(TRIGGERS_SQL, name)
    report.shape[table.name] = {
        "columns": [[c["name"], c["type"], c["not_null"]] for c in columns.values()],
        "checks": [[c["name"], c["def"]] for c in checks],
        "triggers": [[t["name"], t["enabled"], t["function"], t["body"]] for t in triggers],
    }
    problems = []
    for column, kinds in table.columns.items():
        found = columns.get(column)
        if found is None:
            problems.append(f"column {column} is missing")
        elif base_type(found["type"]) not in kinds:
            problems.append(f"{column} is {found['type']}, LEO needs one of {sorted(kinds)}")
    for column, values in table.values.items():
        for check in checks:
            if column in check["columns"] and "ARRAY[" in check["def"]:
                refused = [v for v in values if f"'{v}'" not in check["def"]]
                if refused:
                    problems.append(f"CHECK {check['name']} refuses {column} {refused}")
    if problems:
        report.add(
            "table", table.name, "blocker", "; ".join(problems),
            "the schema differs from the one LEO adopts; send `leo db adopt --check --json` "
            "to LEO's maintainers",
        )  # fmt: skip
    else:
        report.add("table", table.name, "info", f"{len(columns)} columns, shape as expected")
    by_name = {t["name"]: t for t in triggers}
    for trigger in table.triggers:
        found = by_name.get(trigger)
        if found is None:
            report.add(
                "trigger", f"{table.name}.{trigger}", "warning",
                "missing: their rule is not enforced here, LEO's rows are still valid",
            )  # fmt: skip
        elif found["enabled"] == "D":
            report.add("trigger", f"{table.name}.{trigger}", "warning", "disabled")
        else:
            report.add("trigger", f"{table.name}.{trigger}", "info", "present and enabled")
    await _check_rights(conn, table, name, report)
    return not problems


async def _check_rights(
    conn: asyncpg.Connection, table: TableContract, name: str, report: AdoptCheck
) -> None:
    rights = await conn.fetchrow(TABLE_SQL, name)
    assert rights is not None
    needed = ["can_select"] + (["can_insert", "can_update"] if table.writes else [])
    lacking = [n.removeprefix("can_").upper() for n in needed if not rights[n]]
    if lacking:
        report.add(
            "rls", table.name, "blocker", f"{report.role} lacks {', '.join(lacking)}",
            "run leo db adopt as the owner of their tables (on Supabase: postgres)",
        )  # fmt: skip
    elif rights["rls"] and not rights["owner"]:
        report.add(
            "rls", table.name, "blocker",
            f"row-level security is on and {report.role} does not own the table: LEO's views "
            "and functions would see no rows",
            "run leo db adopt as the owner of their tables (on Supabase: postgres)",
        )  # fmt: skip
    elif rights["force_rls"]:
        report.add(
            "rls", table.name, "blocker", "FORCE ROW LEVEL SECURITY applies RLS to the owner too",
            f"add a policy for {report.role} on {table.name}, or ask the owner to drop FORCE",
        )  # fmt: skip
    else:
        state = "on; the owner reads past it" if rights["rls"] else "off"
        report.add("rls", table.name, "info", f"row-level security {state}")


def accepts(fn: asyncpg.Record, names: tuple[str, ...]) -> list[str] | None:
    """The types a call with these named arguments binds in `fn`, or None if it cannot bind."""
    modes = list(fn["arg_modes"]) or ["i"] * len(fn["arg_names"])
    inputs = [n for n, m in zip(fn["arg_names"], modes, strict=False) if m in ("i", "b", "v")]
    if not set(names) <= set(inputs) or len(inputs) != fn["nargs"]:
        return None
    first_default = fn["nargs"] - fn["ndefaults"]
    if any(i < first_default and n not in names for i, n in enumerate(inputs)):
        return None
    return [fn["arg_types"][inputs.index(n)] for n in names]


async def _check_functions(conn: asyncpg.Connection, actor: str, report: AdoptCheck) -> None:
    wanted = sorted({f.name for f in FUNCTIONS} | set(LEO_CALLS))
    rows = await conn.fetch(FUNCTIONS_SQL, wanted)
    report.shape["functions"] = [[r["signature"], r["body"]] for r in rows]
    for contract in FUNCTIONS:
        resolving = [
            r for r in rows if r["name"] == contract.name and accepts(r, contract.arguments)
        ]
        if not resolving and contract.required:
            report.add(
                "function", contract.name, "blocker", f"missing ({contract.why})", contract.fix
            )
        elif len(resolving) > 1:
            report.add(
                "function", contract.name, "warning",
                f"their own call is ambiguous already: {[r['signature'] for r in resolving]}",
            )  # fmt: skip
        elif resolving:
            report.add("function", contract.name, "info", f"{resolving[0]['signature']} resolves")
    for name, arguments in (*LEO_CALLS.items(), *LEO_MORE_CALLS):
        ours = [ARG_TYPES.get(a, "text") for a in arguments]
        for row in rows:
            if row["name"] != name or (types := accepts(row, arguments)) is None:
                continue
            if types == ours:
                report.add(
                    "overload", row["signature"], "info",
                    f"LEO's call of {name} binds it too; leo.{name} comes first on LEO's "
                    "search_path, their callers are unaffected",
                )  # fmt: skip
            else:
                report.add(
                    "overload", row["signature"], "blocker",
                    f"LEO's call of {name}({', '.join(arguments)}) would be ambiguous with it",
                    "tell LEO's maintainers; adopting here would break LEO's calls",
                )  # fmt: skip
    await _check_actor(conn, actor, rows, report)


async def _check_actor(
    conn: asyncpg.Connection, actor: str, rows: list[asyncpg.Record], report: AdoptCheck
) -> None:
    if not any(r["name"] == "handoff_actor_policy" for r in rows):
        return
    policy = await conn.fetchrow(
        "SELECT may_create, skips_claim_check FROM public.handoff_actor_policy($1)", actor
    )
    if policy is None or not policy["may_create"]:
        report.add(
            "actor", actor, "blocker",
            f"{actor} is not in their handoff allow-list: their trigger refuses LEO's handoff rows",
            f"add ('{actor}', true, false) to the actor list in public.handoff_actor_policy "
            "(may create, still subject to the claim check)",
        )  # fmt: skip
    elif policy["skips_claim_check"]:
        report.add(
            "actor", actor, "warning",
            f"{actor} skips their claim check; LEO claims SDs anyway, but their rule would not "
            "hold for LEO's rows",
            f"register ('{actor}', true, false) instead",
        )  # fmt: skip
    else:
        report.add("actor", actor, "info", "registered: may create handoffs, claim-subject")


async def _check_data(conn: asyncpg.Connection, report: AdoptCheck) -> None:
    for key, (sql, what) in DATA_SQL.items():
        count = await conn.fetchval(sql)
        report.add("data", key, "info", f"{count} {what}")
