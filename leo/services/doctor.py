"""`leo doctor`: is this deployment ready? Each check says what it found and the fix to apply.

Checks, in order: Temporal reachable (with the TLS/auth in use), the namespace and LEO's search
attributes (with their types), a worker polling LEO_TASK_QUEUE (DescribeTaskQueue), PostgreSQL
reachable, the migrations current, the role's rights (owner or superuser is a warning), the
sub-agent catalogue's executors resolvable here, and the agents' OS user (LEO_AGENT_USER); the
schema mode is shown, and in adopt mode the PostgreSQL checks are those of `doctor_adopt`. A check whose prerequisite failed is reported
as not checked. Only an error-level failure makes the report not ok.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from leo.infra.settings import Settings
from leo.services.doctor_report import Check, DoctorReport, not_checked, reason_of

if TYPE_CHECKING:
    from temporalio.client import Client

__all__ = ["Check", "DoctorReport", "check_temporal", "run_doctor"]
RPC_TIMEOUT = timedelta(seconds=10)


async def check_temporal(settings: Settings) -> tuple[list[Check], Client | None]:
    """Connection, namespace, search attributes and a polling worker."""
    from leo.infra.client import connect_client, connect_options, describe_security
    from leo.infra.settings import TemporalUnavailable

    checks: list[Check] = []
    names = ["temporal.namespace", "temporal.search_attributes", "temporal.worker"]
    if not settings.temporal_address:
        # The CLI points unset settings at a running `leo dev` first; here there is none.
        checks.append(
            Check(
                name="temporal.connection",
                ok=False,
                detail="no Temporal server configured (TEMPORAL_ADDRESS unset, no profile "
                f"sets an address) and no `leo dev` running on {settings.data_dir}",
                fix="set TEMPORAL_ADDRESS (or TEMPORAL_PROFILE), or start `leo dev`",
            )
        )
        return checks + [not_checked(n, "Temporal is unreachable") for n in names], None
    try:
        options = connect_options(settings)
        security = describe_security(options)
        client = await connect_client(settings)
        info = await client.workflow_service.get_system_info(
            _system_info_request(), timeout=RPC_TIMEOUT
        )
    except (TemporalUnavailable, OSError, RuntimeError, ValueError) as exc:
        checks.append(
            Check(
                name="temporal.connection",
                ok=False,
                detail=reason_of(exc),
                fix="check TEMPORAL_ADDRESS and the TLS/API key settings (TEMPORAL_TLS_*, "
                "TEMPORAL_API_KEY, or the profile in TEMPORAL_CONFIG_FILE); "
                "`temporal operator cluster health` uses the same configuration",
            )
        )
        return checks + [not_checked(n, "Temporal is unreachable") for n in names], None
    version = info.server_version or "unknown version"
    checks.append(
        Check(
            name="temporal.connection",
            ok=True,
            detail=f"{options['target_host']} ({security}), server {version}",
        )
    )
    namespace_ok = await _check_namespace(client, checks)
    if namespace_ok:
        await _check_search_attributes(client, checks)
        await _check_worker(client, settings.task_queue, checks)
    else:
        checks += [not_checked(n, "the namespace does not exist") for n in names[1:]]
    return checks, client


def _system_info_request() -> Any:
    from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

    return GetSystemInfoRequest()


async def _check_namespace(client: Client, checks: list[Check]) -> bool:
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.service import RPCError, RPCStatusCode

    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=client.namespace), timeout=RPC_TIMEOUT
        )
    except RPCError as exc:
        missing = exc.status == RPCStatusCode.NOT_FOUND
        checks.append(
            Check(
                name="temporal.namespace",
                ok=False,
                detail=f"namespace {client.namespace!r} "
                + ("does not exist" if missing else f"cannot be described: {reason_of(exc)}"),
                fix=f"temporal operator namespace create --namespace {client.namespace} "
                "(on Temporal Cloud: create it in the Cloud UI or with tcld), or set "
                "TEMPORAL_NAMESPACE",
            )
        )
        return False
    checks.append(
        Check(name="temporal.namespace", ok=True, detail=f"namespace {client.namespace!r} exists")
    )
    return True


async def _check_search_attributes(client: Client, checks: list[Check]) -> None:
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
    from temporalio.service import RPCError

    from leo.domain.search_attributes import SEARCH_ATTRIBUTES

    try:
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace), timeout=RPC_TIMEOUT
        )
    except RPCError as exc:
        checks.append(
            Check(
                name="temporal.search_attributes",
                ok=False,
                detail=f"cannot list search attributes: {reason_of(exc)}",
                fix="give this identity the right to list search attributes",
            )
        )
        return
    problems: list[str] = []
    fixes: list[str] = []
    for name, kind in SEARCH_ATTRIBUTES.items():
        found = response.custom_attributes.get(name)
        expected = IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
        if found is None:
            problems.append(f"{name} is missing")
            fixes.append(f"--name {name} --type {kind}")
        elif found != expected:
            actual = IndexedValueType.Name(found).removeprefix("INDEXED_VALUE_TYPE_").title()
            problems.append(f"{name} is {actual}, LEO needs {kind}")
    ok = not problems
    fix = ""
    if fixes:
        fix = (
            f"temporal operator search-attribute create --namespace {client.namespace} "
            + " ".join(fixes)
        )
    if len(fixes) < len(problems):
        fix += (
            "; " if fix else ""
        ) + "a search attribute with the wrong type must be removed and created again by an admin"
    checks.append(
        Check(
            name="temporal.search_attributes",
            ok=ok,
            detail=(
                f"{', '.join(SEARCH_ATTRIBUTES)} registered with the right types"
                if ok
                else "; ".join(problems)
            ),
            fix=fix,
        )
    )


async def _check_worker(client: Client, task_queue: str, checks: list[Check]) -> None:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.service import RPCError

    counts: dict[str, int] = {}
    try:
        for label, kind in (
            ("workflow", TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
            ("activity", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
        ):
            response = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueue(name=task_queue),
                    task_queue_type=kind,
                ),
                timeout=RPC_TIMEOUT,
            )
            counts[label] = len(response.pollers)
    except RPCError as exc:
        checks.append(
            Check(
                name="temporal.worker",
                ok=False,
                detail=f"cannot describe task queue {task_queue!r}: {reason_of(exc)}",
                fix="give this identity the right to describe task queues",
            )
        )
        return
    ok = counts["workflow"] > 0 and counts["activity"] > 0
    checks.append(
        Check(
            name="temporal.worker",
            ok=ok,
            detail=f"task queue {task_queue!r}: {counts['workflow']} workflow and "
            f"{counts['activity']} activity pollers"
            + ("" if ok else "; handoffs would wait until a worker polls it"),
            fix="" if ok else f"start a worker: LEO_TASK_QUEUE={task_queue} leo worker",
        )
    )


def schema_mode_check(settings: Settings) -> Check:
    """Which schema LEO runs on (LEO_SCHEMA_MODE); informational, always ok."""
    if settings.schema_mode == "adopt":
        detail = f"adopt: beside an EHG_Engineer database, actor {settings.adopt_actor}"
    else:
        detail = "native: LEO's own schema"
    return Check(name="leo.schema_mode", ok=True, detail=detail)


async def run_doctor(
    settings: Settings, with_database: Callable[[Callable[..., Awaitable[Any]]], Awaitable[Any]]
) -> DoctorReport:
    """All checks. `with_database(work)` runs `work(conn, where)` on the configured database,
    or raises (an OSError or a `DatabaseUnavailable`) when it cannot connect."""
    from leo.services.doctor_postgres import check_postgres

    checks, _client = await check_temporal(settings)
    checks.append(schema_mode_check(settings))
    # The checks after the connection's, by mode: what an unreachable database leaves unchecked.
    later: tuple[str, ...] = ("postgres.migrations", "postgres.role", "sub_agents.executors")
    try:
        if settings.schema_mode == "adopt":
            from leo.services.doctor_adopt import ADOPT_CHECKS, check_adopted

            later = ADOPT_CHECKS
            checks += await with_database(
                lambda conn, where: check_adopted(conn, where, settings.adopt_actor)
            )
        else:
            checks += await with_database(check_postgres)
    except (OSError, RuntimeError) as exc:  # DatabaseUnavailable, or the embedded stack's
        checks.append(
            Check(
                name="postgres.connection",
                ok=False,
                detail=reason_of(exc),
                fix="check LEO_DATABASE_URL (host, credentials, and for TLS sslmode, sslrootcert)",
            )
        )
        for name in later:
            checks.append(not_checked(name, "PostgreSQL is unreachable"))
    checks.append(check_agent_user(settings))
    ok = all(check.ok or check.level == "warning" for check in checks)
    return DoctorReport(ok=ok, checks=checks)


def check_agent_user(settings: Settings) -> Check:
    """Which OS user command agents run as (LEO_AGENT_USER), checked as this process would."""
    import os

    from leo.sub_agents.accounts import AgentUserError, resolve

    name = "sub_agents.user"
    if not settings.agent_user:
        return Check(
            name=name,
            ok=False,
            level="warning",
            detail=f"LEO_AGENT_USER is unset: agents run as the worker's own user (uid "
            f"{os.geteuid()}) and can read its files",
            fix="run the worker as root with LEO_AGENT_USER set to an unprivileged user "
            "that has a range in /etc/subuid (docs/sub-agents.md, Agent users)",
        )
    try:
        account = resolve(settings.agent_user)
    except AgentUserError as exc:
        return Check(name=name, ok=False, detail=str(exc), fix="see docs/sub-agents.md")
    return Check(
        name=name,
        ok=account.per_run,
        level="warning",
        detail=f"agents run as {account.describe()}",
        fix=""
        if account.per_run
        else f"give {account.name} a range: usermod --add-subuids 200000-265535 {account.name}",
    )
