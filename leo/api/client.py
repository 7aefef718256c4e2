"""The typed Python API: start a handoff, wait for its result, look up an SD's status.

    async with await LeoClient.connect(Settings.from_env()) as leo:
        result = await leo.run_handoff(HandoffType.EXEC_TO_PLAN, "SD-LEO-INFRA-HARDENING-001")
        print(result.accepted, result.normalized_score)

Starts are idempotent: the workflow id is derived from the handoff type and the canonical SD
id. A running handoff is attached to, an accepted one returns its first result without
running again, and a rejected (failed) one may be started again once its cause is fixed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from db.sd_history import AuditTrail, SdStatus, get_audit_trail, get_sd_status
from db.sd_updates import SdUpdateResult
from db.sds import resolve_sd_id
from leo.domain.handoff_messages import HandoffInput, HandoffOptions, HandoffResult
from leo.domain.handoffs import (
    HandoffType,
    workflow_id_for,
)
from leo.domain.refusals import RefusalCode
from leo.infra.client import connect_client
from leo.infra.settings import Settings, redact_url
from leo.infra.telemetry import flush_traces
from workflows.registry import HANDOFF_RUN
from workflows.steps import HANDOFF_TYPE, SD_ID

if TYPE_CHECKING:
    import asyncpg


class ConnectionFailed(RuntimeError):
    """`LeoClient.connect` could not reach Temporal or PostgreSQL; names which one, and where
    (a database URL with its password redacted)."""

    def __init__(self, server: Literal["Temporal", "PostgreSQL"], address: str, cause: str) -> None:
        # `leo.infra.client` and `db.pool` already phrase theirs this way, with the TLS in use.
        prefix = f"cannot connect to {server} at "
        super().__init__(cause if cause.startswith(prefix) else f"{prefix}{address}: {cause}")
        self.server = server
        self.address = address


class HandoffFailed(RuntimeError):
    """The handoff ended without a result: a refusal (INVALID_PHASE, VERSION_CONFLICT, ...)."""

    def __init__(self, message: str, code: str | None, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


def result_from_failure(err: WorkflowFailureError) -> HandoffResult | None:
    """The typed result of a rejected handoff, which ends as a failed run."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type == "HandoffRejected" and cause.details:
        return HandoffResult.model_validate(cause.details[0])
    return None


class LeoClient:
    def __init__(
        self,
        client: Client,
        pool: asyncpg.Pool | None,
        task_queue: str,
        *,
        eager_start: bool = False,
    ) -> None:
        """`eager_start`: ask the server to hand a new handoff's first workflow task straight
        back to a worker in this process (Temporal's eager workflow start). It takes effect only
        when `client` also runs a worker on `task_queue` (the demo, the benchmarks, an embedded
        worker); otherwise the server starts the workflow as usual."""
        self.client = client
        self.task_queue = task_queue
        self._pool = pool
        self._eager_start = eager_start

    @classmethod
    async def connect(cls, settings: Settings, *, step_timeout: float | None = None) -> LeoClient:
        """Connect to Temporal, then open a small pool when `settings.database_url` is set.

        Raises `ConnectionFailed` naming the server that cannot be reached; `step_timeout`
        (seconds) bounds each of the two steps.
        """
        import asyncpg

        from db.pool import create_pool

        try:
            client = await asyncio.wait_for(connect_client(settings), step_timeout)
        except (OSError, RuntimeError, TimeoutError) as exc:  # TemporalUnavailable is one
            address = settings.temporal_address or "127.0.0.1:7233"
            reason = str(exc) or f"no answer (timeout {step_timeout} s)"
            raise ConnectionFailed("Temporal", address, reason) from exc
        pool = None
        if settings.database_url:
            try:
                pool = await asyncio.wait_for(
                    create_pool(
                        settings.database_url,
                        min_size=1,
                        max_size=4,
                        search_path=settings.search_path,
                    ),
                    step_timeout,
                )
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                address = redact_url(settings.database_url)
                reason = str(exc) or f"no answer (timeout {step_timeout} s)"
                raise ConnectionFailed("PostgreSQL", address, reason) from exc
        return cls(client, pool, settings.task_queue)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        # Spans of this client's handoffs leave now, not at some later batch (when traced).
        await asyncio.to_thread(flush_traces)

    async def canonical_sd_id(self, sd_id: str) -> str:
        """The SD's canonical id (the workflow id part). Without a database, `sd_id` as given;
        the workflow then refuses a non-canonical spelling with WRONG_WORKFLOW_ID."""
        if self._pool is None:
            return sd_id
        canonical = await resolve_sd_id(self._pool, sd_id)
        if canonical is None:
            raise HandoffFailed(f"SD not found: {sd_id}", RefusalCode.SD_NOT_FOUND)
        return str(canonical)

    async def start_handoff(
        self,
        handoff: HandoffType | str,
        sd_id: str,
        *,
        session_id: str | None = None,
        options: HandoffOptions | None = None,
    ) -> WorkflowHandle[Any, HandoffResult]:
        handoff = HandoffType(handoff)
        canonical = await self.canonical_sd_id(sd_id)
        run = HANDOFF_RUN[handoff]
        workflow_id = workflow_id_for(handoff, canonical)
        try:
            return await self.client.start_workflow(
                run,
                HandoffInput(
                    sd_id=canonical, session_id=session_id, options=options or HandoffOptions()
                ),
                id=workflow_id,
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                static_summary=f"{handoff.value} {sd_id}",
                # Findable from the start, with no upsert (and no event) in the workflow.
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(SD_ID, canonical),
                        SearchAttributePair(HANDOFF_TYPE, handoff.value),
                    ]
                ),
                request_eager_start=self._eager_start,
            )
        except WorkflowAlreadyStartedError:
            # Closed successfully before: the handoff was accepted. Attach to that run.
            return self.client.get_workflow_handle_for(run, workflow_id)

    async def wait(self, handle: WorkflowHandle[Any, HandoffResult]) -> HandoffResult:
        """The typed result, accepted or rejected. Raises HandoffFailed for refusals."""
        try:
            return await handle.result()
        except WorkflowFailureError as err:
            rejected = result_from_failure(err)
            if rejected is not None:
                return rejected
            cause = err.cause
            code = cause.type if isinstance(cause, ApplicationError) else None
            message = getattr(cause, "message", None) or str(err)
            details = cause.details if isinstance(cause, ApplicationError) else None
            raise HandoffFailed(message, code, details) from err

    async def run_handoff(
        self,
        handoff: HandoffType | str,
        sd_id: str,
        *,
        session_id: str | None = None,
        options: HandoffOptions | None = None,
    ) -> HandoffResult:
        handle = await self.start_handoff(handoff, sd_id, session_id=session_id, options=options)
        return await self.wait(handle)

    async def sd_status(self, sd_id: str) -> SdStatus:
        """Phase, version, claim and latest handoffs of an SD (the same as `leo status`)."""
        if self._pool is None:
            raise RuntimeError("sd_status needs a database: set LEO_DATABASE_URL")
        status = await get_sd_status(self._pool, sd_id)
        if status is None:
            raise HandoffFailed(f"SD not found: {sd_id}", RefusalCode.SD_NOT_FOUND)
        return status

    async def update_sd(
        self,
        sd_id: str,
        changes: Mapping[str, Any] | None = None,
        *,
        sets: Iterable[str] = (),
        actor: str | None = None,
        expected_version: int | None = None,
        request_id: str | None = None,
    ) -> SdUpdateResult:
        """Fix an SD's content, as `leo sd update` does: `changes` in the shape of an SD file
        (title, scope, success_criteria, metadata, prd, stories, ...) and/or `--set`
        expressions. The same validation as creating an SD; current_phase, status and
        transition_version are refused. The edit is recorded with `actor` (default: the OS
        user); `expected_version` makes it fail with VERSION_CONFLICT if the SD moved on.

        Raises `leo.services.sd_edit.SdEditError` (with `.code`) or pydantic's ValidationError, having
        written nothing. `request_id` makes a retried call return the first outcome.
        """
        from leo.services.sd_edit import update_sd

        if self._pool is None:
            raise RuntimeError("update_sd needs a database: set LEO_DATABASE_URL")
        return await update_sd(
            self._pool,
            sd_id,
            data=changes,
            sets=sets,
            actor=actor,
            expected_version=expected_version,
            request_id=request_id,
        )

    async def sd_audit(self, sd_id: str) -> AuditTrail:
        """Transition attempts and content edits of an SD (the same as `leo audit`)."""
        if self._pool is None:
            raise RuntimeError("sd_audit needs a database: set LEO_DATABASE_URL")
        trail = await get_audit_trail(self._pool, sd_id)
        if trail is None:
            raise HandoffFailed(f"SD not found: {sd_id}", RefusalCode.SD_NOT_FOUND)
        return trail
