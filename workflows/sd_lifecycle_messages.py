"""SD-LIFECYCLE's `status` query and its updates (EXEC's report, LEAD's approve and reject,
retry, reclaim), each with a validator that refuses a message out of turn with a stable code."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.lifecycle import (
        ClaimInput,
        LifecycleActivities,
        RecordExecReportInput,
        RecordLeadDecisionInput,
    )
    from leo.domain.budget import EXEC_REPORT_BUDGET_BYTES, json_size
    from leo.domain.handoffs import (
        Step,
    )
    from leo.domain.lifecycle_messages import (
        ApprovalInput,
        ExecReport,
        LifecycleStatus,
        MessageAck,
        ReclaimInput,
        RetryInput,
        StepRecord,
    )
    from leo.domain.refusals import (
        FailureType,
        RefusalCode,
        UpdateRefusal,
    )
    from workflows.sd_lifecycle_base import (
        ACTIVITY_RETRY,
        LEAD_DECISION,
        LifecycleBase,
    )
    from workflows.steps import domain_failure


class LifecycleMessages(LifecycleBase):
    @workflow.query(name="status")
    def status(self) -> LifecycleStatus:
        return self._status

    @workflow.update(name="report_exec_complete")
    async def report_exec_complete(self, report: ExecReport) -> MessageAck:
        self._exec_report_in_flight = True
        try:
            update = workflow.current_update_info()
            result = await workflow.execute_activity_method(
                LifecycleActivities.record_exec_report,
                RecordExecReportInput(
                    sd_id=self._status.sd_id or "",
                    session_id=self._status.session_id,
                    request_id=f"{workflow.info().workflow_id}/{update.id if update else 'report'}",
                    report=report,
                ),
                start_to_close_timeout=timedelta(seconds=15),
                retry_policy=ACTIVITY_RETRY,
                summary="record EXEC's completion report",
            )
        except ActivityError as err:
            self._exec_report_in_flight = False
            raise domain_failure(err) from err
        self._exec_report = report
        self._append(
            StepRecord(
                step=Step.EXEC_WORK,
                outcome="reported",
                detail=report.summary,
                handoff_id=result.report_id,
                at=workflow.now(),
            )
        )
        return MessageAck(
            accepted=True, step=Step.EXEC_WORK, detail=f"report {result.report_id} recorded"
        )

    @report_exec_complete.validator
    def _validate_exec_report(self, report: ExecReport) -> None:
        self._require_waiting("exec_complete", "EXEC's completion report")
        if self._exec_report_in_flight or self._exec_report is not None:
            raise ApplicationError(
                "EXEC's completion report was already received",
                type=UpdateRefusal.EXEC_REPORT_ALREADY_RECEIVED,
                non_retryable=True,
            )
        size = json_size(report)
        if size > EXEC_REPORT_BUDGET_BYTES:
            # Refused before it enters the history (and the activity that records it).
            raise ApplicationError(
                f"EXEC's completion report is {size:,} bytes; the limit is "
                f"{EXEC_REPORT_BUDGET_BYTES:,} (docs/reliability.md, payload budget): "
                "put long evidence elsewhere and link to it",
                type=FailureType.PAYLOAD_TOO_LARGE,
                non_retryable=True,
            )

    @workflow.update(name="approve")
    async def approve(self, approval: ApprovalInput) -> MessageAck:
        await self._decide("approved", approval)
        return MessageAck(
            accepted=True, step=Step.LEAD_APPROVAL, detail=f"approved by {approval.approver}"
        )

    @approve.validator
    def _validate_approve(self, approval: ApprovalInput) -> None:
        self._require_waiting("approval", "an approval")
        if self._decision is not None or self._decision_in_flight:
            decided = self._decision[0] if self._decision else "being recorded"
            raise ApplicationError(
                f"LEAD already decided: {decided}",
                type=UpdateRefusal.ALREADY_DECIDED,
                non_retryable=True,
            )
        if not approval.approver.strip():
            raise ApplicationError(
                "an approval or rejection needs the approver's name",
                type=RefusalCode.INVALID_INPUT,
                non_retryable=True,
            )

    @workflow.update(name="reject")
    async def reject(self, approval: ApprovalInput) -> MessageAck:
        await self._decide("rejected_by_lead", approval)
        return MessageAck(
            accepted=True, step=Step.LEAD_APPROVAL, detail=f"rejected by {approval.approver}"
        )

    @reject.validator
    def _validate_reject(self, approval: ApprovalInput) -> None:
        self._validate_approve(approval)
        if not approval.reason.strip():
            raise ApplicationError(
                "a rejection needs a reason", type=RefusalCode.INVALID_INPUT, non_retryable=True
            )

    async def _decide(self, outcome: str, approval: ApprovalInput) -> None:
        """LEAD's decision, recorded in PostgreSQL (sd_lead_decisions) before it is
        acknowledged; the handoff LEAD-FINAL-APPROVAL copies the approval into its record."""
        if workflow.patched(LEAD_DECISION):
            self._decision_in_flight = True
            update = workflow.current_update_info()
            try:
                await workflow.execute_activity_method(
                    LifecycleActivities.record_lead_decision,
                    RecordLeadDecisionInput(
                        sd_id=self._status.sd_id or "",
                        session_id=self._status.session_id,
                        request_id=f"{workflow.info().workflow_id}/{update.id if update else outcome}",
                        decision="approved" if outcome == "approved" else "rejected",
                        approver=approval.approver,
                        reason=approval.reason,
                    ),
                    start_to_close_timeout=timedelta(seconds=15),
                    retry_policy=ACTIVITY_RETRY,
                    summary=f"record LEAD's decision ({outcome})",
                )
            except ActivityError as err:
                raise domain_failure(err) from err
            finally:
                self._decision_in_flight = False
        self._decision = (outcome, approval)

    @workflow.update(name="retry")
    def retry(self, request: RetryInput) -> MessageAck:
        self._retry_requested = True
        return MessageAck(accepted=True, step=self._status.current_step, detail="retrying")

    @retry.validator
    def _validate_retry(self, request: RetryInput) -> None:
        self._require_waiting("retry", "a retry")

    @workflow.update(name="reclaim")
    async def reclaim(self, request: ReclaimInput) -> MessageAck:
        """Claim the SD again after losing it; refused (CLAIMED_BY_OTHER_SESSION) while the
        other session's claim is live."""
        session = self._status.session_id or ""
        result = await self._activity(
            LifecycleActivities.claim_sd,
            ClaimInput(sd_id=self._status.sd_id or "", session_id=session),
            summary=f"reclaim {self._sd_name()} for {session}",
        )
        self._claim_lost = None
        self._status = self._status.model_copy(update={"claim": f"held by {session}"})
        detail = f"claimed again by {session}"
        if result.took_over_from:
            detail += f" (took over from {result.took_over_from})"
        return MessageAck(accepted=True, step=self._status.current_step, detail=detail)

    @reclaim.validator
    def _validate_reclaim(self, request: ReclaimInput) -> None:
        self._refuse_while_closing("reclaim")
        if self._claim_lost is None:
            raise ApplicationError(
                f"the lifecycle of {self._sd_name()} has not lost its claim "
                f"({self._status.claim or 'not claimed yet'})",
                type=UpdateRefusal.CLAIM_NOT_LOST,
                non_retryable=True,
            )
