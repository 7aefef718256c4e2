"""Security: pinned search_path on every function of ours, least-privilege roles (the worker
and caller groups of db/privileges.sql read everything and write nothing directly, yet run a
whole SD lifecycle through the SECURITY DEFINER functions), an append-only audit trail, and no
secret in logs, CLI output or workflow histories."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest
from temporalio.client import Client

from db.migrate import migrate
from db.pool import connect, create_pool
from leo.api import LeoClient, LifecycleClient
from leo.api.client import HandoffFailed
from leo.dev_stack import Stack
from leo.domain.handoffs import HandoffType
from leo.domain.lifecycle_messages import ExecReport
from leo.runtime import build_worker
from tests.cli.helpers import Leo
from tests.support.db import call, context, failing_trigger, fetch_one
from tests.support.factories import create_sd
from tests.support.faults import ROOT, WorkerProcess, wait_until, worker_env
from tests.support.invariants import assert_invariants

GRANTS = ROOT / "deploy" / "postgres" / "worker-grants.sql"
LEO_BIN = str(Path(sys.executable).parent / "leo")
EVIDENCE = {
    "risks": [{"risk": "r", "mitigation": "m"}],
    "commits": ["abc"],
    "security_findings": [],
}
ENTRY_POINTS = {
    "fn_atomic_lead_to_plan_transition",
    "fn_atomic_plan_to_exec_transition",
    "fn_atomic_exec_to_plan_transition",
    "fn_atomic_plan_to_lead_transition",
    "fn_atomic_lead_final_approval_transition",
    "fn_record_handoff_rejection",
    "fn_record_exec_report",
    "fn_record_sub_agent_result",
    "fn_record_lead_decision",
    "fn_commit_handoff",
    "fn_prepare_handoff",
    "fn_update_sd",
    "fn_bypass_completion",
    "claim_sd",
    "heartbeat_sd_claim",
    "release_sd",
}
# Our entry points and helpers, by name; anything else in `public` is not ours.
OUR_FUNCTIONS = (
    r"^(fn_atomic_[a-z_]+_transition|fn_record_[a-z_]+|fn_commit_handoff|leo_[a-z_]+|claim_sd|release_sd"
    r"|heartbeat_sd_claim)$"
)


def with_user(url: str, user: str, password: str | None = None) -> str:
    """The URL with another user (and password); host, port, database and query kept."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    auth = quote(user) + (f":{quote(password)}" if password else "")
    return urlunsplit(parts._replace(netloc=f"{auth}@{host}"))


async def test_every_function_of_ours_pins_its_search_path(db_pool: asyncpg.Pool) -> None:
    rows = await db_pool.fetch(
        "SELECT p.proname, p.oid::regprocedure::text AS signature, p.proconfig, p.prosecdef "
        "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'public' AND NOT EXISTS ("
        "  SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') "
        "AND p.proname !~ '^leo_test_'"  # the transient fault triggers of tests/db
    )
    ours = [r for r in rows if re.match(OUR_FUNCTIONS, r["proname"])]
    names = {r["proname"] for r in ours}
    for expected in (
        "fn_atomic_lead_to_plan_transition",
        "fn_atomic_plan_to_exec_transition",
        "fn_atomic_exec_to_plan_transition",
        "fn_atomic_plan_to_lead_transition",
        "fn_atomic_lead_final_approval_transition",
        "fn_record_handoff_rejection",
        "fn_record_exec_report",
        "claim_sd",
        "release_sd",
        "heartbeat_sd_claim",
        "leo_transition_begin",
        "leo_sd_defaults",
    ):
        assert expected in names
    unpinned = [
        r["signature"]
        for r in rows
        if not any(c.startswith("search_path=") for c in (r["proconfig"] or []))
    ]
    # Every function in the schema, ours or not (there are no others), pins search_path.
    assert unpinned == []
    pinned = {
        next(c for c in r["proconfig"] if c.startswith("search_path=")).split("=", 1)[1]
        for r in rows
    }
    # pg_temp last: a caller's temporary table cannot shadow ours inside a definer function.
    assert pinned == {"pg_catalog, public, pg_temp"}
    # The entry points run as their owner; the helpers they call do not need to.
    definers = {r["proname"] for r in rows if r["prosecdef"]}
    assert definers == ENTRY_POINTS


@pytest.fixture(scope="module")
async def worker_dsn(migrated_db: str) -> str:
    """Applies deploy/postgres/worker-grants.sql (twice: it is idempotent), then `leo db
    migrate` again, as a deployment would; the DSN of the login `leo_worker_login` (trust auth
    on the embedded server's socket, so no password)."""
    conn = await connect(migrated_db)
    try:
        allowed = await conn.fetchval(
            "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
        )
        if not allowed:
            pytest.skip("the test database user cannot create roles")
        await conn.execute(GRANTS.read_text())
        await conn.execute(GRANTS.read_text())
        await migrate(conn)
        await conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'leo_caller_login') "
            "THEN CREATE ROLE leo_caller_login LOGIN IN ROLE leo_caller; END IF; END $$"
        )
    finally:
        await conn.close()
    return with_user(migrated_db, "leo_worker_login")


@pytest.fixture
async def worker_pool(worker_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(worker_dsn, min_size=1, max_size=10)
    try:
        yield pool
    finally:
        await pool.close()


async def test_the_worker_role_has_no_special_rights(
    db_pool: asyncpg.Pool, worker_pool: asyncpg.Pool
) -> None:
    assert await worker_pool.fetchval("SELECT current_user") == "leo_worker_login"
    roles = await db_pool.fetch(
        "SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, "
        "rolbypassrls, ARRAY(SELECT g.rolname FROM pg_auth_members m "
        "JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid ORDER BY 1) AS member_of "
        "FROM pg_roles r WHERE rolname IN ('leo_worker', 'leo_caller', 'leo_worker_login') "
        "ORDER BY rolname"
    )
    plain = {"rolsuper": False, "rolcreatedb": False, "rolcreaterole": False}
    plain |= {"rolreplication": False, "rolbypassrls": False}
    assert [dict(r) for r in roles] == [
        {"rolname": "leo_caller", "rolcanlogin": False, **plain, "member_of": []},
        {"rolname": "leo_worker", "rolcanlogin": False, **plain, "member_of": []},
        {"rolname": "leo_worker_login", "rolcanlogin": True, **plain, "member_of": ["leo_worker"]},
    ]
    forbidden = [
        "DELETE FROM sd_transition_audit WHERE false",
        "DELETE FROM sd_phase_handoffs WHERE false",
        "TRUNCATE sub_agent_execution_results",
        "UPDATE leo_sub_agents SET active = false WHERE false",
        "UPDATE sd_phase_handoffs SET status = 'accepted' WHERE false",
        "INSERT INTO leo_sub_agents (code, name) VALUES ('X', 'x')",
        "SELECT * FROM leo_schema_migrations",
        "CREATE TABLE leo_probe (x int)",
        "CREATE FUNCTION leo_probe() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "DROP FUNCTION fn_atomic_lead_to_plan_transition(text, text, text, jsonb)",
        "ALTER TABLE strategic_directives_v2 DISABLE TRIGGER USER",
        "ALTER ROLE leo_worker_login SUPERUSER",
        "GRANT leo_caller TO leo_worker_login",
        "CREATE ROLE leo_probe",
    ]
    for sql in forbidden:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await worker_pool.execute(sql)


async def leo_tables(pool: asyncpg.Pool) -> list[str]:
    return [
        r["relname"]
        for r in await pool.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1"
        )
    ]


@pytest.mark.parametrize("login", ["leo_worker_login", "leo_caller_login"])
async def test_the_least_privilege_roles_read_every_table_and_write_none(
    db_pool: asyncpg.Pool, worker_dsn: str, login: str
) -> None:
    tables = await leo_tables(db_pool)
    assert {"strategic_directives_v2", "sd_transition_audit", "leo_sub_agents"} <= set(tables)
    conn = await connect(with_user(worker_dsn, login))
    try:
        refused = {}
        for table in tables:
            column = await db_pool.fetchval(
                "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum = 1",
                table,
            )
            attempts = [
                f"INSERT INTO {table} DEFAULT VALUES",
                f"UPDATE {table} SET {column} = {column} WHERE false",
                f"DELETE FROM {table} WHERE false",
                f"TRUNCATE {table}",
            ]
            if not table.startswith("leo_schema_"):
                await conn.fetch(f"SELECT * FROM {table} LIMIT 1")  # reads what it needs
            else:
                attempts.append(f"SELECT * FROM {table}")
            for sql in attempts:
                try:
                    async with conn.transaction():
                        await conn.execute(sql)
                except asyncpg.InsufficientPrivilegeError:
                    refused[sql] = True
                else:
                    refused[sql] = False
        assert [sql for sql, ok in refused.items() if not ok] == []
    finally:
        await conn.close()


async def test_a_granted_role_calls_the_functions_by_named_arguments(
    db_pool: asyncpg.Pool, worker_dsn: str
) -> None:
    """Supabase rpc() style: `SELECT fn(p_sd_id => ...)` as leo_caller works for its claims;
    the worker's login calls a transition the same way; a role without the grants cannot call
    them at all (EXECUTE is revoked from PUBLIC)."""
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
    caller = await connect(with_user(worker_dsn, "leo_caller_login"))
    worker = await connect(worker_dsn)
    try:
        claim = await caller.fetchval(
            "SELECT claim_sd(p_sd_id => $1, p_session_id => 'caller-session')", sd.id
        )
        assert claim["success"], claim
        result = await worker.fetchval(
            "SELECT fn_atomic_lead_to_plan_transition(p_sd_id => $1, "
            "p_session_id => 'caller-session', p_transition_context => $2)",
            sd.id,
            {"request_id": f"caller-{uuid.uuid4()}", "expected_version": 1},
        )
        assert result["success"] and result["transition_version"] == 2, result
        released = await caller.fetchval("SELECT release_sd(p_session_id => 'caller-session')")
        assert released["code"] == "OK"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await caller.fetchval(
                "SELECT fn_record_sub_agent_result(p_idempotency_key => 'x', p_sd_id => $1, "
                "p_sub_agent_code => 'X', p_sub_agent_name => 'x', p_phase => 'PLAN_PRD', "
                "p_verdict => 'PASS', p_confidence => 1, p_critical_issues => '[]', "
                "p_warnings => '[]', p_recommendations => '[]', p_detailed_analysis => '', "
                "p_execution_time => 0, p_justification => NULL, p_conditions => NULL, "
                "p_metadata => '{}')",
                sd.id,
            )
        # The commit step (results and decision together) is the worker's alone.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await caller.fetchval(
                "SELECT fn_commit_handoff(p_handoff_type => 'LEAD-TO-PLAN', p_sd_id => $1, "
                "p_accepted => false, p_phase => 'LEAD_PRE_APPROVAL', p_sub_agent_results => '[]')",
                sd.id,
            )
    finally:
        await caller.close()
        await worker.close()
    stranger = f"leo_stranger_{uuid.uuid4().hex[:8]}"
    await db_pool.execute(f"CREATE ROLE {stranger} LOGIN")
    conn = await connect(with_user(worker_dsn, stranger))
    try:
        for call in (
            "SELECT fn_atomic_plan_to_exec_transition(p_sd_id => 'x')",
            "SELECT claim_sd(p_sd_id => 'x', p_session_id => 's')",
            "SELECT leo_resolve_sd_id('x')",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetchval(call)
        # PostgreSQL 14 grants CREATE on public to PUBLIC unless taken away: it is.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE leo_probe (x int)")
    finally:
        await conn.close()


async def test_the_audit_trail_is_append_only_even_for_the_owner(db_pool: asyncpg.Pool) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    completed = await call(db_pool, "LEAD-TO-PLAN", sd.id, context())
    assert completed["success"], completed
    failing = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    async with failing_trigger(
        db_pool,
        table="sd_phase_handoffs",
        event="INSERT",
        column="sd_id",
        sd_id=failing.id,
        sqlstate="23514",
        message="injected",
    ):
        failed = await call(db_pool, "LEAD-TO-PLAN", failing.id, context())
    assert failed["code"] == "TRANSITION_FAILED", failed
    rows = await db_pool.fetch(
        "SELECT id, status FROM sd_transition_audit WHERE sd_id = ANY($1) ORDER BY status",
        [sd.id, failing.id],
    )
    assert [r["status"] for r in rows] == ["completed", "failed"]
    for row in rows:
        for sql in (
            "UPDATE sd_transition_audit SET status = 'rolled_back' WHERE id = $1",
            "UPDATE sd_transition_audit SET error_details = NULL WHERE id = $1",
            "DELETE FROM sd_transition_audit WHERE id = $1",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await db_pool.execute(sql, row["id"])
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await db_pool.execute("TRUNCATE sd_transition_audit")
    after = await db_pool.fetch(
        "SELECT id, status FROM sd_transition_audit WHERE sd_id = ANY($1) ORDER BY status",
        [sd.id, failing.id],
    )
    assert after == rows


async def test_a_whole_sd_lifecycle_runs_with_only_the_documented_grants(
    client: Client, db_pool: asyncpg.Pool, worker_pool: asyncpg.Pool
) -> None:
    """All five handoffs, the session claim (claim, heartbeat, release), EXEC's report and its
    retrospective, with the worker logged in as `leo_worker_login` (a member of leo_worker)."""
    queue = f"leo-least-privilege-{uuid.uuid4().hex[:8]}"
    sd = await create_sd(
        db_pool,
        sd_type="infrastructure",
        metadata=EVIDENCE,
        with_prd=True,
        stories=[{"status": "ready"}, {"status": "in_progress"}],
    )
    lifecycle = LifecycleClient(LeoClient(client, db_pool, queue))

    async def waiting_for(what: str) -> bool:
        try:
            return (await lifecycle.status(sd.id)).waiting_for == what
        except Exception:  # not started yet
            return False

    async with build_worker(client, worker_pool, task_queue=queue):
        handle = await lifecycle.start(sd.id, session_id="least-privilege-session")
        await wait_until(lambda: waiting_for("exec_complete"), timeout=60, what="EXEC work")
        await lifecycle.report_exec_complete(
            sd.id,
            ExecReport(
                summary="implemented",
                commits=["def456"],
                test_results={sd.story_keys[0]: "passing"},
                retrospective={"quality_score": 88},
            ),
        )
        await wait_until(lambda: waiting_for("approval"), timeout=60, what="LEAD approval")
        await lifecycle.approve(sd.id, approver="lead@example.com", reason="ship it")
        async with asyncio.timeout(60):
            final = await lifecycle.wait(handle)

    assert final.state == "completed", final
    handoffs = {h.value for h in HandoffType}
    assert [r.outcome for r in final.steps if r.step.value in handoffs] == ["accepted"] * 5
    row = await fetch_one(
        db_pool,
        "SELECT status, current_phase, transition_version FROM strategic_directives_v2 "
        "WHERE id = $1",
        sd.id,
    )
    # Five transitions and EXEC's report (gate evidence: it bumps the version too).
    assert tuple(row) == ("completed", "COMPLETED", 7)
    claim = await db_pool.fetchval(
        "SELECT release_reason FROM claude_sessions WHERE session_id = 'least-privilege-session'"
    )
    assert claim == "completed"
    await assert_invariants(db_pool, [sd.id], one_result_per_agent=True)


async def test_no_secret_reaches_logs_cli_output_or_workflow_histories(
    client: Client,
    stack: Stack,
    db_pool: asyncpg.Pool,
    worker_dsn: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = f"pw-S3cr3t-{uuid.uuid4().hex}"
    role = f"leo_secret_{uuid.uuid4().hex[:8]}"
    # A role with a password (the embedded server's trust auth ignores it, a real one checks
    # it), with the worker's grants.
    await db_pool.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{secret}' IN ROLE leo_worker")
    dsn = with_user(worker_dsn, role, secret)
    assert secret in dsn
    parts = urlsplit(worker_dsn)
    # Nothing listens there: a socket that does not exist, and for a TCP URL (PostgreSQL 15 in
    # bin/test-postgres15, where asyncpg prefers the URL's host to `?host=`) port 1.
    unreachable = parts._replace(query=f"host={tmp_path / 'no-such-socket'}")
    if parts.hostname:
        unreachable = unreachable._replace(netloc=f"{parts.hostname}:1")
    bad_dsn = with_user(urlunsplit(unreachable), role, secret)
    caplog.set_level(logging.DEBUG)
    sds = [
        await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="infrastructure")
        for _ in range(3)
    ]
    workflow_ids = []

    # 1. `leo worker` in a subprocess, with the password in LEO_DATABASE_URL; it prints the
    #    database it uses at start.
    sub_queue = f"leo-secret-sub-{uuid.uuid4().hex[:8]}"
    env = worker_env(dsn, stack.temporal_address, sub_queue)
    subprocess_worker = WorkerProcess(
        {**env, "LEO_DATA_DIR": str(tmp_path / "leo-data")},
        log=tmp_path / "leo-worker.log",
        argv=[LEO_BIN, "worker"],
    ).start()
    try:
        leo = LeoClient(client, db_pool, sub_queue)
        async with asyncio.timeout(60):
            result = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sds[0].id)
        assert result.accepted
        workflow_ids.append(result.workflow_id)
    finally:
        subprocess_worker.stop()
    # A worker that cannot reach its database says so, without the password.
    broken = WorkerProcess(
        {**worker_env(bad_dsn, stack.temporal_address, sub_queue), "LEO_DATA_DIR": str(tmp_path)},
        log=tmp_path / "leo-worker-broken.log",
        argv=[LEO_BIN, "worker"],
    ).start()
    assert broken.process is not None
    await asyncio.to_thread(broken.process.wait, 60)
    assert broken.process.returncode != 0

    # 2. An in-process worker on a pool opened with the password (its logs go to caplog).
    in_queue = f"leo-secret-in-{uuid.uuid4().hex[:8]}"
    pool = await create_pool(dsn, min_size=1, max_size=4)
    try:
        async with build_worker(client, pool, task_queue=in_queue):
            leo = LeoClient(client, pool, in_queue)
            async with asyncio.timeout(60):
                result = await leo.run_handoff(HandoffType.LEAD_TO_PLAN, sds[1].id)
            assert result.accepted
            workflow_ids.append(result.workflow_id)

            # 3. The `leo` CLI with the password in LEO_DATABASE_URL, on that worker.
            cli = Leo(
                env={
                    "LEO_DATABASE_URL": dsn,
                    "LEO_DATA_DIR": str(tmp_path / "cli-data"),
                    "TEMPORAL_ADDRESS": stack.temporal_address,
                    "LEO_TASK_QUEUE": in_queue,
                    "COLUMNS": "250",
                }
            )
            outputs = [
                await cli("handoff", "LEAD-TO-PLAN", sds[2].sd_key, "--json"),
                await cli("status", sds[2].sd_key),
                await cli("audit", sds[2].sd_key, "--json"),
                await cli("db", "migrate", "--json"),
                await cli("status", sds[2].sd_key, env={"LEO_DATABASE_URL": bad_dsn}),
                await cli("handoff", "LEAD-TO-PLAN", "SD-NOPE", env={"LEO_DATABASE_URL": bad_dsn}),
            ]
    finally:
        await pool.close()
    assert outputs[0].exit_code == 0, outputs[0].output
    workflow_ids.append(json.loads(outputs[0].stdout)["workflow_id"])
    assert [o.exit_code for o in outputs[4:]] == [3, 3]
    assert "cannot connect to PostgreSQL" in outputs[4].stderr
    assert f"{role}:***@" in outputs[4].stderr  # the URL is shown, redacted

    # Nothing anywhere holds the password.
    texts = {
        "leo worker output": subprocess_worker.output(),
        "broken leo worker output": broken.output(),
        "caplog": caplog.text
        + "\n".join(str(r.__dict__) for r in caplog.records),  # args, extras, exc text
        **{f"leo {n}": o.output for n, o in enumerate(outputs)},
    }
    assert "LEO worker: task queue" in texts["leo worker output"]
    assert "***" in texts["leo worker output"] or role in texts["leo worker output"]
    for workflow_id in workflow_ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        texts[f"history of {workflow_id}"] = history.to_json()
    leaked = [name for name, text in texts.items() if secret in text]
    assert leaked == [], f"the password appears in: {leaked}"
    assert all(texts.values())


# What the orchestrator stores for a passed verdict; a hand-made call may claim the same.
PASSED = {"passed": True, "normalized_score": 100, "threshold": 60, "gate_results": []}


async def sd_row(pool: asyncpg.Pool, sd_id: str) -> tuple[str, str, int]:
    row = await fetch_one(
        pool,
        "SELECT status, current_phase, transition_version FROM strategic_directives_v2 "
        "WHERE id = $1",
        sd_id,
    )
    return (row["status"], row["current_phase"], row["transition_version"])


async def test_no_role_but_the_worker_transitions_or_commits(
    db_pool: asyncpg.Pool, worker_dsn: str
) -> None:
    """H1: the calls that took a fresh SD from draft to COMPLETED as leo_caller (five
    transitions, each with a gate summary that says it passed) are refused, and so are the
    commit step, the rejection recorder and the EXEC report; nothing is written."""
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", with_prd=True)
    before = await sd_row(db_pool, sd.id)
    stranger = f"leo_stranger_{uuid.uuid4().hex[:8]}"
    await db_pool.execute(f"CREATE ROLE {stranger} LOGIN")
    for login in ("leo_caller_login", stranger):
        conn = await connect(with_user(worker_dsn, login))
        try:
            for handoff in HandoffType:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.fetchval(
                        f"SELECT {handoff.function_name}(p_sd_id => $1, "
                        "p_transition_context => $2)",
                        sd.id,
                        {"request_id": f"forged-{uuid.uuid4()}", "gate_summary": PASSED},
                    )
            for sql in (
                "SELECT fn_commit_handoff(p_handoff_type => 'LEAD-TO-PLAN', p_sd_id => $1, "
                "p_accepted => true, p_phase => 'LEAD_PRE_APPROVAL', p_sub_agent_results => '[]', "
                "p_transition_context => jsonb_build_object('request_id', 'forged-commit'))",
                "SELECT fn_record_handoff_rejection(p_sd_id => $1, p_handoff_type => "
                "'LEAD-TO-PLAN', p_transition_context => '{\"request_id\": \"forged-rej\"}')",
                "SELECT fn_record_exec_report(p_sd_id => $1, p_session_id => NULL, "
                "p_request_id => 'forged-report', p_summary => 's', p_evidence => '{}')",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.fetchval(sql, sd.id)
        finally:
            await conn.close()
    assert await sd_row(db_pool, sd.id) == before
    written = await db_pool.fetchval(
        "SELECT (SELECT count(*) FROM sd_transition_audit WHERE sd_id = $1) "
        "+ (SELECT count(*) FROM sd_phase_handoffs WHERE sd_id = $1) "
        "+ (SELECT count(*) FROM sd_exec_reports WHERE sd_id = $1)",
        sd.id,
    )
    assert written == 0


async def test_a_bypass_is_recorded_as_a_bypass_with_its_role_and_actor(
    db_pool: asyncpg.Pool, worker_dsn: str, tmp_path: Path
) -> None:
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN", sd_type="security")
    caller_dsn = with_user(worker_dsn, "leo_caller_login")
    worker = await connect(worker_dsn)
    caller = await connect(caller_dsn)
    bypass_sql = (
        "SELECT fn_bypass_completion(p_sd_id => $1, p_actor => $2, p_reason => $3, "
        "p_request_id => $4)"
    )
    request_id = f"bypass-{uuid.uuid4()}"
    try:
        gated = await worker.fetchval(
            "SELECT fn_atomic_lead_to_plan_transition(p_sd_id => $1, p_transition_context => $2)",
            sd.id,
            context(gate_summary=PASSED),
        )
        assert gated["success"], gated
        # The bypass is not the worker's: it moves SDs only through their gates.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await worker.fetchval(bypass_sql, sd.id, "ada", "why", request_id)
        for actor, reason, fragment in (("", "why", "p_actor"), ("ada", " ", "p_reason")):
            refused = await caller.fetchval(bypass_sql, sd.id, actor, reason, request_id)
            assert refused["code"] == "INVALID_INPUT" and fragment in refused["error"], refused
        result = await caller.fetchval(
            bypass_sql, sd.sd_key, "ada@example.com", "hotfix shipped by hand", request_id
        )
        assert result["success"] and result["bypass"], result
        assert (result["handoff_type"], result["actor"], result["db_role"]) == (
            "BYPASS-COMPLETION",
            "ada@example.com",
            "leo_caller_login",
        )
        again = await caller.fetchval(bypass_sql, sd.id, "ada@example.com", "again", request_id)
        assert again["idempotent_hit"] and again["audit_id"] == result["audit_id"], again
        closed = await caller.fetchval(bypass_sql, sd.id, "bob", "twice", f"b-{uuid.uuid4()}")
        assert closed["code"] == "INVALID_PHASE", closed
    finally:
        await worker.close()
        await caller.close()

    assert await sd_row(db_pool, sd.id) == ("completed", "COMPLETED", 3)
    handoffs = await db_pool.fetch(
        "SELECT handoff_type, status, validation_passed, validation_score, db_role, actor, "
        "metadata ->> 'reason' AS reason FROM sd_phase_handoffs WHERE sd_id = $1 "
        "ORDER BY created_at",
        sd.id,
    )
    assert [tuple(r) for r in handoffs] == [
        ("LEAD-TO-PLAN", "accepted", True, 100, "leo_worker_login", None, None),
        (
            "BYPASS-COMPLETION",
            "accepted",
            None,  # never validated: no gate judged it
            None,
            "leo_caller_login",
            "ada@example.com",
            "hotfix shipped by hand",
        ),
    ]
    audits = await db_pool.fetch(
        "SELECT transition_type, status, db_role, actor FROM sd_transition_audit "
        "WHERE sd_id = $1 ORDER BY completed_at",
        sd.id,
    )
    assert [tuple(r) for r in audits] == [
        ("LEAD_TO_PLAN", "completed", "leo_worker_login", None),
        ("BYPASS_COMPLETION", "completed", "leo_caller_login", "ada@example.com"),
    ]

    # `leo status` and `leo audit` (run with the caller's login: reads are all it needs).
    cli = Leo(env={"LEO_DATABASE_URL": caller_dsn, "LEO_DATA_DIR": str(tmp_path)})
    status = await cli.json("status", sd.sd_key)
    [bypass] = [h for h in status["handoffs"] if h["handoff_type"] == "BYPASS-COMPLETION"]
    assert (bypass["actor"], bypass["db_role"], bypass["validation_passed"]) == (
        "ada@example.com",
        "leo_caller_login",
        None,
    )
    shown = await cli("status", sd.sd_key)
    assert shown.exit_code == 0, shown.output
    assert "BYPASSED by ada@example.com" in shown.stdout
    assert "leo_caller_login" in shown.stdout
    assert "no gates" in shown.stdout
    trail = await cli.json("audit", sd.sd_key)
    assert [(e["transition_type"], e["db_role"], e["actor"]) for e in trail["entries"]] == [
        ("LEAD-TO-PLAN", "leo_worker_login", None),
        ("BYPASS-COMPLETION", "leo_caller_login", "ada@example.com"),
    ]
    shown = await cli("audit", sd.sd_key)
    assert shown.exit_code == 0, shown.output
    assert "1 BYPASSED (completed with no gates)" in shown.stdout
    assert "leo_caller_login" in shown.stdout


async def test_the_orchestrator_reports_no_bypass_or_hand_made_record_as_accepted(
    client: Client, db_pool: asyncpg.Pool, worker_dsn: str, worker_pool: asyncpg.Pool
) -> None:
    """A transition no gate judged (H1's first call, as the owner, who still may) and a
    BYPASS-COMPLETION are never returned as an accepted handoff by a later `leo handoff`,
    and the lifecycle shows the bypass as a bypass."""
    forged = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    made = await db_pool.fetchval(
        "SELECT fn_atomic_lead_to_plan_transition(p_sd_id => $1, p_transition_context => $2)",
        forged.id,
        {"request_id": f"r1-{uuid.uuid4()}"},
    )
    assert made["success"], made
    bypassed = await create_sd(db_pool, ready_for="LEAD-FINAL-APPROVAL")
    caller = await connect(with_user(worker_dsn, "leo_caller_login"))
    try:
        result = await caller.fetchval(
            "SELECT fn_bypass_completion(p_sd_id => $1, p_actor => 'ada', p_reason => 'urgent')",
            bypassed.id,
        )
        assert result["success"], result
    finally:
        await caller.close()

    queue = f"leo-no-forged-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, worker_pool, task_queue=queue):
        leo = LeoClient(client, db_pool, queue)
        with pytest.raises(HandoffFailed) as refused:
            await leo.run_handoff(HandoffType.LEAD_TO_PLAN, forged.id)
        assert refused.value.code == "INVALID_PHASE", refused.value
        with pytest.raises(HandoffFailed) as refused:
            await leo.run_handoff(HandoffType.LEAD_FINAL_APPROVAL, bypassed.id)
        assert refused.value.code == "INVALID_PHASE", refused.value
        assert "BYPASS-COMPLETION" in str(refused.value) and "ada" in str(refused.value)

        lifecycle = LifecycleClient(leo)
        async with asyncio.timeout(60):
            final = await lifecycle.wait(await lifecycle.start(bypassed.id))
    outcomes = {r.step.value: r.outcome for r in final.steps}
    assert outcomes["LEAD-APPROVAL"] == outcomes["LEAD-FINAL-APPROVAL"] == "bypassed", outcomes
    assert "accepted" not in outcomes.values()
    [record] = [r for r in final.steps if r.step.value == "LEAD-FINAL-APPROVAL"]
    assert (
        record.detail is not None and "ada" in record.detail and "leo_caller_login" in record.detail
    )


async def test_a_function_the_owner_creates_later_is_not_public_executable(
    db_pool: asyncpg.Pool, worker_dsn: str
) -> None:
    """L9: between a new function's CREATE and the grants, PostgreSQL's default would give
    PUBLIC EXECUTE; the owner's default privileges (db/privileges.sql) take that away."""
    name = f"leo_probe_{uuid.uuid4().hex[:8]}"
    await db_pool.execute(
        f"CREATE FUNCTION {name}() RETURNS int LANGUAGE sql "
        "SET search_path = pg_catalog, public, pg_temp AS 'SELECT 1'"
    )
    try:
        stranger = f"leo_stranger_{uuid.uuid4().hex[:8]}"
        await db_pool.execute(f"CREATE ROLE {stranger} LOGIN")
        conn = await connect(with_user(worker_dsn, stranger))
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetchval(f"SELECT {name}()")
        finally:
            await conn.close()
    finally:
        await db_pool.execute(f"DROP FUNCTION {name}()")


async def test_what_the_audit_points_at_is_append_only_too(db_pool: asyncpg.Pool) -> None:
    """Review M3: the gate summary a handoff was accepted on, edits, EXEC's reports and the
    agents' verdicts cannot be rewritten by the owner either, and replica mode (which skips
    ordinary triggers) does not help."""
    sd = await create_sd(db_pool, ready_for="LEAD-TO-PLAN")
    assert (await call(db_pool, "LEAD-TO-PLAN", sd.id, context()))["success"]
    edited = await db_pool.fetchval(
        'SELECT fn_update_sd(p_sd_id => $1, p_changes => \'{"sd": {"scope": "x"}}\', '
        "p_actor => 'ada')",
        sd.id,
    )
    assert edited["success"], edited
    reported = await db_pool.fetchval(
        "SELECT fn_record_exec_report(p_sd_id => $1, p_session_id => NULL, p_request_id => $2, "
        "p_summary => 'done', p_evidence => '{}')",
        sd.id,
        f"report-{uuid.uuid4()}",
    )
    assert reported["success"], reported
    await db_pool.fetchval(
        "SELECT fn_record_sub_agent_result(p_idempotency_key => $2, p_sd_id => $1, "
        "p_sub_agent_code => 'X', p_sub_agent_name => 'x', p_phase => 'PLAN_PRD', "
        "p_verdict => 'PASS', p_confidence => 1, p_critical_issues => '[]', "
        "p_warnings => '[]', p_recommendations => '[]', p_detailed_analysis => '', "
        "p_execution_time => 0, p_justification => NULL, p_conditions => NULL, "
        "p_metadata => '{}')",
        sd.id,
        f"idmp-{uuid.uuid4()}",
    )
    tables = {
        "sd_phase_handoffs": "validation_details = '{}'",
        "sd_changes": "actor = 'someone else'",
        "sd_exec_reports": "summary = 'rewritten'",
        "sub_agent_execution_results": "verdict = 'FAIL'",
        "sd_transition_audit": "status = 'failed'",
    }
    superuser = await db_pool.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    async with db_pool.acquire() as conn:
        for replica in (False, True) if superuser else (False,):
            if replica:
                await conn.execute("SET session_replication_role = replica")
            for table, assignment in tables.items():
                for sql in (
                    f"UPDATE {table} SET {assignment} WHERE sd_id = $1",
                    f"DELETE FROM {table} WHERE sd_id = $1",
                ):
                    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                        await conn.execute(sql, sd.id)
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                    await conn.execute(f"TRUNCATE {table} CASCADE")
        await conn.execute("RESET session_replication_role")
    rows = await db_pool.fetchval(
        "SELECT (SELECT count(*) FROM sd_phase_handoffs WHERE sd_id = $1) "
        "+ (SELECT count(*) FROM sd_changes WHERE sd_id = $1) "
        "+ (SELECT count(*) FROM sd_exec_reports WHERE sd_id = $1) "
        "+ (SELECT count(*) FROM sub_agent_execution_results WHERE sd_id = $1)",
        sd.id,
    )
    assert rows == 4
