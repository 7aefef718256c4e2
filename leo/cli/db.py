"""`leo db migrate` (LEO's own schema) and `leo db adopt` (beside an EHG_Engineer database)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from db.adopt.check import check_adoption
from db.adopt.runner import AdoptRefused, adopt
from leo.cli.common import (
    CliError,
    ExitCode,
    JsonFlag,
    migrate_database,
    on_connection,
    settings,
)
from leo.cli.render import print_json, print_migration, stdout
from leo.dev_stack import open_database
from leo.infra.settings import redact_url

if TYPE_CHECKING:
    from db.adopt.check import AdoptCheck
    from db.adopt.runner import AdoptReport

db_app = typer.Typer(help="The database schema.", no_args_is_help=True)


@db_app.command("migrate")
def db_migrate(as_json: JsonFlag = False) -> None:
    """Apply the schema migrations, the SQL functions and the least-privilege grants.

    Targets LEO_DATABASE_URL, or, when it is unset, the embedded PostgreSQL under LEO_DATA_DIR
    (started for the run and stopped again, unless it was already running). Safe to repeat and to
    run concurrently; refuses to run when an applied migration file has been edited. Creates the
    NOLOGIN roles leo_worker and leo_caller when it may (else a DBA runs
    deploy/postgres/worker-grants.sql) and grants them read access and EXECUTE on the entry
    points, on every run.
    """
    configured = settings()
    if configured.schema_mode == "adopt":
        raise CliError(
            "LEO_SCHEMA_MODE=adopt: this database is adopted, run `leo db adopt` instead",
            ExitCode.BAD_INPUT,
        )
    with open_database(configured) as url:
        report = migrate_database(url)
        target = redact_url(url)
    print_migration(report, target, as_json=as_json)


CheckFlag = Annotated[
    bool, typer.Option("--check", help="Only check (read-only): report and refuse on blockers.")
]
DryRunFlag = Annotated[
    bool, typer.Option("--dry-run", help="Check, and list what would be applied; write nothing.")
]


@db_app.command("adopt")
def db_adopt(
    check: CheckFlag = False, dry_run: DryRunFlag = False, as_json: JsonFlag = False
) -> None:
    """Run LEO beside an existing EHG_Engineer database, touching none of its data.

    Every LEO object goes into schema leo (side tables, read views, transition functions); their
    tables get no DDL. First a read-only check of their tables, triggers, RLS and this role's
    rights, their functions and overloads, and the data shapes; blockers are printed with a
    one-line fix each, and nothing is applied while any is left. Run it as the owner of their
    tables (not a superuser); the handoff actor is LEO_ADOPT_ACTOR. Idempotent. Then run LEO
    with LEO_SCHEMA_MODE=adopt. Undo: DROP SCHEMA leo CASCADE (docs/adoption.md).
    """
    configured = settings()
    actor = configured.adopt_actor
    with open_database(configured) as url:
        target = redact_url(url)
        if check:
            result = asyncio.run(on_connection(url, lambda conn: check_adoption(conn, actor)))
            print_check(result, target, as_json=as_json)
            if not result.ok:
                raise typer.Exit(ExitCode.ENVIRONMENT)
            return
        try:
            report = asyncio.run(
                on_connection(url, lambda conn: adopt(conn, actor=actor, dry_run=dry_run))
            )
        except AdoptRefused as exc:
            print_check(exc.check, target, as_json=as_json)
            raise typer.Exit(ExitCode.ENVIRONMENT) from exc
    print_adopt(report, target, as_json=as_json)


def print_check(result: AdoptCheck, target: str, *, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "database_url": target,
                "role": result.role,
                "ok": result.ok,
                "fingerprint": result.fingerprint,
                "findings": [vars(f) for f in result.findings],
            }
        )
        return
    console = stdout()
    marks = {"blocker": ("BLOCKER", "red"), "warning": ("warning", "yellow"), "info": ("ok", "")}
    for f in result.findings:
        label, color = marks[f.level]
        mark = f"[{color}]{label:<8}[/{color}]" if color else f"{label:<8}"
        console.print(f"{mark} {escape(f'{f.topic} {f.subject}: {f.detail}')}")
        if f.fix:
            console.print(f"         fix: {f.fix}", markup=False)
    verdict = "Ready to adopt." if result.ok else f"{len(result.blockers)} blocker(s): not adopted."
    console.print(verdict, markup=False)
    console.print(f"[dim]{target}[/dim]", soft_wrap=True)


def print_adopt(report: AdoptReport, target: str, *, as_json: bool) -> None:
    plan = report.plan
    if as_json:
        print_json(
            {
                "database_url": target,
                "dry_run": report.dry_run,
                "applied": report.applied,
                "migrations": plan.migrations,
                "functions": plan.functions,
                "fingerprint_recorded": plan.fingerprint,
                "fingerprint": report.check.fingerprint,
                "up_to_date": not plan.changed,
            }
        )
        return
    console = stdout()
    verb = "Would apply" if report.dry_run else "Applied"
    for name in plan.migrations:
        console.print(f"{verb} {name} (db/adopt/migrations)", markup=False)
    if plan.functions:
        console.print(f"{verb} the views, functions and grants of schema leo", markup=False)
    if plan.fingerprint:
        what = "Would record" if report.dry_run else "Recorded"
        console.print(f"{what} their schema's fingerprint {report.check.fingerprint[:12]}")
    if not plan.changed:
        console.print("Adoption is up to date.")
    console.print(f"[dim]{target}[/dim]", soft_wrap=True)
