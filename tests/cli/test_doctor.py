"""`leo doctor` on a healthy stack, then with one thing broken at a time."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from db.migrate import migrate
from db.pool import connect
from leo.dev_stack import Stack, free_port
from tests.cli.helpers import Leo
from tests.faults.test_security import GRANTS, with_user

CHECKS = [
    "temporal.connection",
    "temporal.namespace",
    "temporal.search_attributes",
    "temporal.worker",
    "leo.schema_mode",
    "postgres.connection",
    "postgres.migrations",
    "postgres.role",
    "sub_agents.executors",
    "sub_agents.user",
]


@pytest.fixture
async def fresh_db(db_pool: asyncpg.Pool, migrated_db: str) -> AsyncIterator[str]:
    """A new, migrated database of its own: no other test's catalogue rows in it."""
    name = f"leo_doctor_{uuid.uuid4().hex[:12]}"
    try:
        await db_pool.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.InsufficientPrivilegeError:
        pytest.skip("the test database's user may not create databases")
    url = urlunsplit(urlsplit(migrated_db)._replace(path=f"/{name}"))
    conn = await connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield url
    await db_pool.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def doctor_env(
    fresh_db: str, stack: Stack, task_queue: str, tmp_path: Path
) -> dict[str, str | None]:
    return {
        "LEO_DATABASE_URL": fresh_db,
        "LEO_DATA_DIR": str(tmp_path / "leo-data"),
        "TEMPORAL_ADDRESS": stack.temporal_address,
        "TEMPORAL_NAMESPACE": None,
        "LEO_TASK_QUEUE": task_queue,  # the session worker polls it
        "COLUMNS": "250",
    }


async def doctor(env: dict[str, str | None], **changes: str | None) -> tuple[int, dict[str, Any]]:
    result = await Leo(env={**env, **changes})("doctor", "--json")
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    assert [c["name"] for c in report["checks"]] == CHECKS
    assert report["ok"] == (result.exit_code == 0)
    return result.exit_code, {c["name"]: c for c in report["checks"]}


def failing(checks: dict[str, Any]) -> set[str]:
    return {name for name, c in checks.items() if not c["ok"]}


async def test_doctor_on_a_healthy_stack_is_ready_with_a_superuser_warning(
    doctor_env: dict[str, str | None],
) -> None:
    code, checks = await doctor(doctor_env)

    assert code == 0
    assert failing(checks) == {"postgres.role", "sub_agents.user"}
    agents = checks["sub_agents.user"]
    assert agents["level"] == "warning" and "LEO_AGENT_USER is unset" in agents["detail"]
    role = checks["postgres.role"]
    assert role["level"] == "warning" and "worker-grants.sql" in role["fix"]
    assert "(plaintext)" in checks["temporal.connection"]["detail"]
    assert "LeoScore" in checks["temporal.search_attributes"]["detail"]
    assert "workflow" in checks["temporal.worker"]["detail"]
    assert "no TLS" in checks["postgres.connection"]["detail"]
    for check in checks.values():
        assert set(check) == {"name", "ok", "level", "detail", "fix"}

    text = await Leo(env=doctor_env)("doctor")
    assert text.exit_code == 0, text.output
    assert "Ready." in text.stdout and "postgres.role" in text.stdout


async def test_doctor_names_a_missing_worker_namespace_or_server(
    doctor_env: dict[str, str | None],
) -> None:
    code, checks = await doctor(doctor_env, LEO_TASK_QUEUE=f"nobody-{uuid.uuid4().hex[:6]}")
    assert code == 1
    assert failing(checks) == {"temporal.worker", "postgres.role", "sub_agents.user"}
    assert "leo worker" in checks["temporal.worker"]["fix"]

    code, checks = await doctor(doctor_env, TEMPORAL_NAMESPACE="no-such-namespace")
    assert code == 1
    assert checks["temporal.namespace"]["detail"] == "namespace 'no-such-namespace' does not exist"
    assert "temporal operator namespace create" in checks["temporal.namespace"]["fix"]
    assert checks["temporal.worker"]["detail"].startswith("not checked")

    gone = f"127.0.0.1:{free_port()}"
    code, checks = await doctor(doctor_env, TEMPORAL_ADDRESS=gone)
    assert code == 1
    assert f"cannot connect to Temporal at {gone}" in checks["temporal.connection"]["detail"]
    assert checks["postgres.connection"]["ok"]  # the database is still checked


async def register_namespace(client: Client, name: str) -> None:
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name,
            workflow_execution_retention_period=Duration(seconds=86400),
        )
    )
    for _ in range(100):  # the frontend's namespace cache catches up within a few seconds
        try:
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=name)
            )
        except RPCError:
            await asyncio.sleep(0.1)
        else:
            return


async def test_doctor_finds_missing_and_mistyped_search_attributes(
    doctor_env: dict[str, str | None], client: Client
) -> None:
    namespace = f"leo-doctor-{uuid.uuid4().hex[:8]}"
    await register_namespace(client, namespace)
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={
                "LeoSdId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
                "LeoScore": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
            },
        ),
        timeout=timedelta(seconds=30),
    )

    code, checks = await doctor(doctor_env, TEMPORAL_NAMESPACE=namespace)

    assert code == 1
    attributes = checks["temporal.search_attributes"]
    assert not attributes["ok"] and attributes["level"] == "error"
    assert "LeoScore is Keyword, LEO needs Double" in attributes["detail"]
    assert "LeoOutcome is missing" in attributes["detail"]
    assert "LeoSdId" not in attributes["detail"]
    assert (
        f"temporal operator search-attribute create --namespace {namespace} "
        "--name LeoSdType --type Keyword" in attributes["fix"]
    )


async def test_doctor_finds_database_problems_one_at_a_time(
    doctor_env: dict[str, str | None], fresh_db: str, db_pool: asyncpg.Pool, migrated_db: str
) -> None:
    code, checks = await doctor(
        doctor_env, LEO_DATABASE_URL=f"postgresql://leo@127.0.0.1:{free_port()}/leo"
    )
    assert code == 1
    assert "cannot connect to PostgreSQL" in checks["postgres.connection"]["detail"]
    assert checks["postgres.migrations"]["detail"].startswith("not checked")

    conn = await connect(fresh_db)
    try:
        # An edited migration file: its recorded checksum no longer matches.
        await conn.execute("UPDATE leo_schema_migrations SET checksum = 'x' WHERE version = '0001'")
        code, checks = await doctor(doctor_env)
        assert failing(checks) == {"postgres.migrations", "postgres.role", "sub_agents.user"}
        assert (
            "edited after they were applied: 0001_schema.sql"
            in (checks["postgres.migrations"]["detail"])
        )
        await migrate_back(conn)
        # A pending migration.
        await conn.execute(
            "DELETE FROM leo_schema_migrations WHERE version = "
            "(SELECT max(version) FROM leo_schema_migrations)"
        )
        code, checks = await doctor(doctor_env)
        assert code == 1 and checks["postgres.migrations"]["fix"] == "leo db migrate"
        assert "pending:" in checks["postgres.migrations"]["detail"]
    finally:
        await conn.close()


async def test_doctor_in_adopt_mode_names_adopt_modes_checks_when_postgres_is_unreachable(
    doctor_env: dict[str, str | None],
) -> None:
    """What an unreachable database leaves unchecked is the mode's own checks: in adopt mode the
    adoption, fingerprint and actor, not native mode's migrations, role and executors."""
    result = await Leo(
        env={
            **doctor_env,
            "LEO_SCHEMA_MODE": "adopt",
            "LEO_DATABASE_URL": f"postgresql://leo@127.0.0.1:{free_port()}/leo",
        }
    )("doctor", "--json")
    assert result.exit_code == 1, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert "cannot connect to PostgreSQL" in checks["postgres.connection"]["detail"]
    for name in ("postgres.adoption", "postgres.fingerprint", "postgres.actor"):
        assert checks[name]["detail"].startswith("not checked"), checks
    assert not {"postgres.migrations", "postgres.role", "sub_agents.executors"} & set(checks)


async def migrate_back(conn: asyncpg.Connection) -> None:
    from db.migrate import discover_migrations

    first = discover_migrations()[0]
    await conn.execute(
        "UPDATE leo_schema_migrations SET checksum = $1 WHERE version = $2",
        first.checksum,
        first.version,
    )


async def test_doctor_checks_the_role_rights_and_the_executors(
    doctor_env: dict[str, str | None], fresh_db: str
) -> None:
    conn = await connect(fresh_db)
    try:
        if not await conn.fetchval(
            "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ):
            pytest.skip("the test database user cannot create roles")
        await conn.execute(GRANTS.read_text())
        await migrate(conn)  # grants to the groups the file created
        bare = f"leo_bare_{uuid.uuid4().hex[:8]}"
        await conn.execute(f"CREATE ROLE {bare} LOGIN")
        await conn.execute(
            "INSERT INTO leo_sub_agents (code, name, executor_kind, executor_ref) VALUES "
            """('BROKEN_PY', 'x', 'python', '"no_such_module_xyz:run"'), """
            """('BROKEN_CMD', 'y', 'command', '["no-such-command-xyz", "--json"]')"""
        )
    finally:
        await conn.close()

    worker = with_user(fresh_db, "leo_worker_login")
    code, checks = await doctor(doctor_env, LEO_DATABASE_URL=worker)
    assert checks["postgres.role"] == {
        "name": "postgres.role",
        "ok": True,
        "level": "error",
        "detail": "role leo_worker_login has a worker's rights",
        "fix": "",
    }
    executors = checks["sub_agents.executors"]
    assert code == 1 and not executors["ok"]
    assert "BROKEN_PY: cannot import no_such_module_xyz:run" in executors["detail"]
    assert "BROKEN_CMD: no-such-command-xyz is not on PATH" in executors["detail"]
    # A worker may not read the migration records: a warning, not a failure.
    assert checks["postgres.migrations"]["level"] == "warning"

    try:
        _, checks = await doctor(doctor_env, LEO_DATABASE_URL=with_user(fresh_db, bare))
    finally:
        conn = await connect(fresh_db)
        await conn.execute(f"DROP ROLE {bare}")
        await conn.close()
    role = checks["postgres.role"]
    assert not role["ok"] and role["level"] == "error"
    assert f"role {bare} lacks SELECT on leo_sub_agents" in role["detail"]
    assert "EXECUTE on claim_sd" in role["detail"]
    assert "worker-grants.sql" in role["fix"]
