"""SD-LIFECYCLE from Python: start the chain for an SD, read its status, send its messages."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from leo.api.client import HandoffFailed, LeoClient
from leo.domain.handoff_messages import HandoffOptions
from leo.domain.handoffs import default_session_id, lifecycle_workflow_id
from leo.domain.lifecycle_messages import (
    ApprovalInput,
    ExecReport,
    LifecycleInput,
    LifecycleStatus,
    MessageAck,
    ReclaimInput,
    RetryInput,
)
from leo.domain.refusals import UpdateRefusal
from workflows.sd_lifecycle import SdLifecycleWorkflow

# An update refused because the lifecycle was continuing as new is sent again this many times,
# this far apart (a switch takes one workflow task).
CLOSING_RETRIES, CLOSING_RETRY_SECONDS = 50, 0.2


class LifecycleConflict(RuntimeError):
    """Another session's lifecycle is already driving the SD."""


class LifecycleClient:
    """The SD-LIFECYCLE workflow from Python: start, inspect, and send its messages."""

    def __init__(self, leo: LeoClient) -> None:
        self.leo = leo

    async def handle(self, sd_id: str) -> WorkflowHandle[Any, LifecycleStatus]:
        canonical = await self.leo.canonical_sd_id(sd_id)
        return self.leo.client.get_workflow_handle_for(
            SdLifecycleWorkflow.run, lifecycle_workflow_id(canonical)
        )

    async def start(
        self,
        sd_id: str,
        *,
        session_id: str | None = None,
        options: HandoffOptions | None = None,
        max_retries: int = 3,
        deadline_seconds: float | None = None,
        claim_heartbeat_seconds: float = 120,
    ) -> WorkflowHandle[Any, LifecycleStatus]:
        """Start the SD's lifecycle, or attach to it when this session already runs it.

        One lifecycle per SD: the workflow id is derived from the canonical SD id. Another
        session's running lifecycle is refused with LifecycleConflict; a completed one is
        returned as it is (starting it again changes nothing).
        """
        canonical = await self.leo.canonical_sd_id(sd_id)
        request = LifecycleInput(
            sd_id=canonical,
            session_id=session_id,
            options=options or HandoffOptions(),
            max_retries=max_retries,
            deadline_seconds=deadline_seconds,
            claim_heartbeat_seconds=claim_heartbeat_seconds,
        )
        workflow_id = lifecycle_workflow_id(canonical)
        try:
            return await self.leo.client.start_workflow(
                SdLifecycleWorkflow.run,
                request,
                id=workflow_id,
                task_queue=self.leo.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                static_summary=f"SD-LIFECYCLE {sd_id}",
            )
        except WorkflowAlreadyStartedError:
            handle = self.leo.client.get_workflow_handle_for(SdLifecycleWorkflow.run, workflow_id)
            description = await handle.describe()
            if description.status == WorkflowExecutionStatus.RUNNING:
                status = await handle.query(SdLifecycleWorkflow.status)
                wanted = session_id or default_session_id(canonical)
                if status.session_id not in (None, wanted):
                    raise LifecycleConflict(
                        f"{sd_id} is already driven by session {status.session_id}'s lifecycle "
                        f"(at {status.current_step}, {status.waiting_for or status.state}); "
                        "wait for it to finish or cancel it"
                    ) from None
            return handle

    async def status(self, sd_id: str) -> LifecycleStatus:
        return await (await self.handle(sd_id)).query(SdLifecycleWorkflow.status)

    async def wait(self, handle: WorkflowHandle[Any, LifecycleStatus]) -> LifecycleStatus:
        """The final status; a lifecycle that ended early (rejected by LEAD, expired, out of
        retries) returns its status too. Other failures raise HandoffFailed."""
        try:
            return await handle.result()
        except WorkflowFailureError as err:
            cause = err.cause
            if (
                isinstance(cause, ApplicationError)
                and cause.details
                and cause.type
                in (
                    "LeadRejected",
                    "LifecycleExpired",
                    "RetriesExhausted",
                )
            ):
                return LifecycleStatus.model_validate(cause.details[0])
            code = cause.type if isinstance(cause, ApplicationError) else None
            raise HandoffFailed(getattr(cause, "message", None) or str(err), code) from err

    async def _update(self, sd_id: str, update: Any, arg: Any) -> MessageAck:
        """Send an update; one refused because the lifecycle was continuing as new (nothing was
        done) is sent again to the next run."""
        handle = await self.handle(sd_id)
        for attempt in range(CLOSING_RETRIES + 1):
            try:
                ack: MessageAck = await handle.execute_update(update, arg)
            except WorkflowUpdateFailedError as err:
                cause = err.cause
                closing = (
                    isinstance(cause, ApplicationError)
                    and cause.type == UpdateRefusal.CONTINUING_AS_NEW
                )
                if not closing or attempt == CLOSING_RETRIES:
                    raise
                await asyncio.sleep(CLOSING_RETRY_SECONDS)
            else:
                return ack
        raise AssertionError("unreachable")

    async def report_exec_complete(self, sd_id: str, report: ExecReport) -> MessageAck:
        return await self._update(sd_id, SdLifecycleWorkflow.report_exec_complete, report)

    async def approve(self, sd_id: str, approver: str, reason: str = "") -> MessageAck:
        return await self._update(
            sd_id, SdLifecycleWorkflow.approve, ApprovalInput(approver=approver, reason=reason)
        )

    async def reject(self, sd_id: str, approver: str, reason: str) -> MessageAck:
        return await self._update(
            sd_id, SdLifecycleWorkflow.reject, ApprovalInput(approver=approver, reason=reason)
        )

    async def retry(self, sd_id: str, reason: str = "") -> MessageAck:
        return await self._update(sd_id, SdLifecycleWorkflow.retry, RetryInput(reason=reason))

    async def reclaim(self, sd_id: str, reason: str = "") -> MessageAck:
        """Claim the SD again after the lifecycle lost its claim ("claim lost to ..." in its
        status); refused with CLAIMED_BY_OTHER_SESSION while the other session's claim is live."""
        return await self._update(sd_id, SdLifecycleWorkflow.reclaim, ReclaimInput(reason=reason))
