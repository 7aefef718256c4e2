"""`leo db migrate`: the schema migrations and the SQL functions."""

from __future__ import annotations

import typer

from leo.cli.common import JsonFlag, migrate_database, settings
from leo.cli.render import print_migration
from leo.dev_stack import open_database
from leo.infra.settings import redact_url

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
    with open_database(settings()) as url:
        report = migrate_database(url)
        target = redact_url(url)
    print_migration(report, target, as_json=as_json)
