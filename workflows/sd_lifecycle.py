"""SD-LIFECYCLE: one durable parent workflow per SD that chains the five handoffs.

LEAD-TO-PLAN, PLAN-TO-EXEC, then a wait for EXEC's completion report, EXEC-TO-PLAN,
PLAN-TO-LEAD, a wait for LEAD's approval, and LEAD-FINAL-APPROVAL; each handoff runs as a
child workflow under its own idempotent id. The chain resumes from wherever the SD stands, holds
the SD's session claim while it runs (heartbeating it) and releases it at the end, on
cancellation and on failure. A rejected handoff does not fail the chain: it waits for `retry`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NoReturn

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.lifecycle import (
        ClaimInput,
        ClaimResult,
        LifecycleActivities,
        LifecycleState,
        LoadLifecycleStateInput,
        RecordExecReportInput,
        ReleaseInput,
    )
    from leo import metrics
    from leo.domain import search_attributes
    from leo.domain.budget import EXEC_REPORT_BUDGET_BYTES, json_size
    from leo.domain.handoff_messages import HandoffInput, HandoffResult
    from leo.domain.handoffs import (
        LIFECYCLE,
        START_STEP,
        STEPS,
        HandoffType,
        Step,
        default_session_id,
        lifecycle_workflow_id,
        workflow_id_for,
    )
    from leo.domain.lifecycle_messages import (
        ApprovalInput,
        ExecReport,
        LifecycleInput,
        LifecycleResume,
        LifecycleStatus,
        MessageAck,
        ReclaimInput,
        RetryInput,
        StepRecord,
    )
    from leo.domain.refusals import (
        LIFECYCLE_ACTIVITY_ERROR_TYPES,
        FailureType,
        RefusalCode,
        UpdateRefusal,
    )
    from workflows.pipeline import HANDOFF_TYPE, SD_ID, SD_TYPE, domain_failure
    from workflows.registry import HANDOFF_RUN

OUTCOME = SearchAttributeKey.for_keyword(search_attributes.OUTCOME)
# Patch id: a refused claim heartbeat (or a handoff refused for a foreign claim) marks the claim
# lost; the lifecycle starts no handoff until `reclaim` succeeds.
CLAIM_WATCH = "claim-watch"
ACTIVITY_RETRY = RetryPolicy(
    maximum_interval=timedelta(seconds=5),
    non_retryable_error_types=list(LIFECYCLE_ACTIVITY_ERROR_TYPES),
)


# The failure type of each update refused out of turn.
NOT_WAITING = {
    "exec_complete": UpdateRefusal.NOT_WAITING_FOR_EXEC_REPORT,
    "approval": UpdateRefusal.NOT_WAITING_FOR_APPROVAL,
    "retry": UpdateRefusal.NOT_WAITING_FOR_RETRY,
}


def handoff_record(step: Step, attempt: int, result: HandoffResult, at: datetime) -> StepRecord:
    return StepRecord(
        step=step,
        outcome=result.outcome,
        attempt=attempt,
        normalized_score=result.normalized_score,
        threshold=result.threshold,
        failed_gate=result.failed_gate,
        issues=result.issues,
        gates={g.name: g.status.value for g in result.gates},
        sub_agents={a.code: a.verdict.value for a in result.sub_agents},
        new_status=result.new_status if result.accepted else None,
        new_phase=result.new_phase if result.accepted else None,
        transition_version=result.transition_version if result.accepted else None,
        workflow_id=result.workflow_id,
        run_id=result.run_id,
        audit_id=result.audit_id,
        handoff_id=result.handoff_id,
        at=at,
    )


class DeadlinePassed(Exception):
    pass


class ContinueAsNewSuggested(Exception):
    """Raised out of a wait when the server suggests continuing as new."""


@workflow.defn(name=LIFECYCLE)
class SdLifecycleWorkflow:
    def __init__(self) -> None:
        self._status = LifecycleStatus()
        self._exec_report: ExecReport | None = None
        self._exec_report_in_flight = False
        self._decision: tuple[str, ApprovalInput] | None = None
        self._retry_requested = False
        self._resume_retry = False
        self._deadline: datetime | None = None
        # The session that took the SD's claim over (or "nobody" when it was released).
        self._claim_lost: str | None = None

    # --- messages ---------------------------------------------------------------------------

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
    def approve(self, approval: ApprovalInput) -> MessageAck:
        self._decision = ("approved", approval)
        return MessageAck(
            accepted=True, step=Step.LEAD_APPROVAL, detail=f"approved by {approval.approver}"
        )

    @approve.validator
    def _validate_approve(self, approval: ApprovalInput) -> None:
        self._require_waiting("approval", "an approval")
        if self._decision is not None:
            raise ApplicationError(
                f"LEAD already decided: {self._decision[0]}",
                type=UpdateRefusal.ALREADY_DECIDED,
                non_retryable=True,
            )

    @workflow.update(name="reject")
    def reject(self, approval: ApprovalInput) -> MessageAck:
        self._decision = ("rejected_by_lead", approval)
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
        if self._claim_lost is None:
            raise ApplicationError(
                f"the lifecycle of {self._sd_name()} has not lost its claim "
                f"({self._status.claim or 'not claimed yet'})",
                type=UpdateRefusal.CLAIM_NOT_LOST,
                non_retryable=True,
            )

    def _sd_name(self) -> str:
        """The SD this lifecycle is for, also before it has loaded it (from its workflow id)."""
        return (
            self._status.sd_key
            or self._status.sd_id
            or workflow.info().workflow_id.removeprefix(f"{LIFECYCLE}:")
        )

    def _require_waiting(self, kind: str, what: str) -> None:
        if self._status.waiting_for != kind:
            now = self._status.waiting_for or self._status.state
            where = (
                f"at {self._status.current_step}"
                if self._status.current_step
                else "at its start, before its first step"
            )
            raise ApplicationError(
                f"not waiting for {what}: the lifecycle of {self._sd_name()} is {where} ({now})",
                type=NOT_WAITING[kind],
                non_retryable=True,
            )

    # --- the chain --------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: LifecycleInput) -> LifecycleStatus:
        sd, session = await self._load(request)
        resume = request.resume
        start = START_STEP[sd.current_phase]
        if resume is None:
            self._record_already_done(sd, start)
        elif resume.waiting_for == "retry" and resume.current_step is not None:
            # The SD has not moved since the rejection: wait for `retry` again, do not re-run.
            start, self._resume_retry = resume.current_step, True
        if start is None:
            return self._finish("completed")

        if resume is not None and resume.claim_lost_to is not None:
            # Continued as new while the claim was lost: still lost, still waiting for reclaim.
            self._lose_claim(resume.claim_lost_to)
        else:
            await self._activity(
                LifecycleActivities.claim_sd,
                ClaimInput(sd_id=sd.sd_id, session_id=session),
                summary=f"claim {sd.sd_key} for {session}",
            )
            self._status = self._status.model_copy(update={"claim": f"held by {session}"})
        heartbeat = asyncio.create_task(self._heartbeat(session, request.claim_heartbeat_seconds))
        try:
            outcome = await self._chain(sd, start, request, session)
        except ContinueAsNewSuggested:
            heartbeat.cancel()
            await self._continue_as_new(request)
        except asyncio.CancelledError:
            await self._release(session, "manual")
            self._finish("cancelled")
            raise
        except DeadlinePassed:
            await self._release(session, "timeout")
            self._finish("expired")
            raise ApplicationError(
                f"the lifecycle of {sd.sd_key} passed its deadline at {self._status.current_step} "
                f"(waiting for {self._status.waiting_for})",
                self._status,
                type=FailureType.LIFECYCLE_EXPIRED,
                non_retryable=True,
            ) from None
        except BaseException:
            await self._release(session, "session_ended")
            self._finish("failed")
            raise
        finally:
            heartbeat.cancel()
        await self._release(session, "completed")
        await workflow.wait_condition(workflow.all_handlers_finished)
        if outcome == "rejected_by_lead":
            self._finish("rejected_by_lead")
            # A failed run, so that a new lifecycle may be started for the SD later.
            raise ApplicationError(
                f"LEAD rejected {sd.sd_key}: {self._status.last_rejection}",
                self._status,
                type=FailureType.LEAD_REJECTED,
                non_retryable=True,
            )
        return self._finish("completed")

    async def _load(self, request: LifecycleInput) -> tuple[LifecycleState, str]:
        """Where the SD stands, checked against this workflow's id; restores a resumed run."""
        try:
            sd = await workflow.execute_activity_method(
                LifecycleActivities.load_lifecycle_state,
                LoadLifecycleStateInput(sd_id=request.sd_id),
                start_to_close_timeout=timedelta(seconds=15),
                retry_policy=ACTIVITY_RETRY,
                summary=f"where is {request.sd_id}",
            )
        except ActivityError as err:
            raise domain_failure(err) from err
        expected = lifecycle_workflow_id(sd.sd_id)
        if workflow.info().workflow_id != expected:
            raise ApplicationError(
                f"the lifecycle of this SD must run with workflow id {expected!r}",
                type=FailureType.WRONG_WORKFLOW_ID,
                non_retryable=True,
            )
        session = request.session_id or default_session_id(sd.sd_id)
        resume = request.resume
        self._status = LifecycleStatus(
            sd_id=sd.sd_id,
            sd_key=sd.sd_key,
            session_id=session,
            state="running",
            steps=resume.steps if resume else [],
            retries_used=resume.retries_used if resume else {},
            last_rejection=resume.last_rejection if resume else None,
            runs=resume.runs if resume else 1,
        )
        if resume is not None:
            self._deadline = resume.deadline
        elif request.deadline_seconds is not None:
            self._deadline = workflow.now() + timedelta(seconds=request.deadline_seconds)
        workflow.upsert_search_attributes(
            [
                SD_ID.value_set(sd.sd_id),
                SD_TYPE.value_set(sd.sd_type),
                HANDOFF_TYPE.value_set(LIFECYCLE),
            ]
        )
        if sd.current_phase not in START_STEP:
            raise ApplicationError(
                f"{sd.sd_key} is {sd.status} / {sd.current_phase}; a lifecycle cannot resume from there",
                type="INVALID_PHASE",
                non_retryable=True,
            )
        return sd, session

    async def _continue_as_new(self, request: LifecycleInput) -> NoReturn:
        """Keep the claim; the next run picks up this wait where it is."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        status = self._status
        workflow.continue_as_new(
            request.model_copy(
                update={
                    "resume": LifecycleResume(
                        steps=status.steps,
                        retries_used=status.retries_used,
                        last_rejection=status.last_rejection,
                        current_step=status.current_step,
                        waiting_for=status.waiting_for,
                        deadline=self._deadline,
                        runs=status.runs + 1,
                        claim_lost_to=self._claim_lost,
                    )
                }
            )
        )

    async def _chain(
        self, sd: LifecycleState, start: Step, request: LifecycleInput, session: str
    ) -> str:
        for step in STEPS[STEPS.index(start) :]:
            self._status = self._status.model_copy(
                update={"current_step": step, "state": "running"}
            )
            if step is Step.EXEC_WORK:
                await self._wait_for("exec_complete", lambda: self._exec_report is not None)
            elif step is Step.LEAD_APPROVAL:
                await self._wait_for("approval", lambda: self._decision is not None)
                assert self._decision is not None
                outcome, approval = self._decision
                self._append(
                    StepRecord(
                        step=step,
                        outcome=outcome,
                        detail=f"{approval.approver}: {approval.reason}".rstrip(": "),
                        at=workflow.now(),
                    )
                )
                if outcome == "rejected_by_lead":
                    self._status = self._status.model_copy(
                        update={"last_rejection": approval.reason}
                    )
                    return outcome
            else:
                await self._handoff(HandoffType(step.value), sd, request, session)
        return "completed"

    async def _handoff(
        self, handoff: HandoffType, sd: LifecycleState, request: LifecycleInput, session: str
    ) -> None:
        step = Step(handoff.value)
        attempt = sum(
            1
            for r in self._status.steps
            if r.step is step and r.outcome in ("accepted", "rejected")
        )
        # Continued as new while waiting for `retry`: wait again before the next attempt.
        awaiting_retry, self._resume_retry = self._resume_retry, False
        while True:
            if not awaiting_retry:
                if self._claim_lost is not None:
                    # Never start a handoff without the claim: it would only be refused.
                    await self._wait_for("reclaim", lambda: self._claim_lost is None)
                attempt += 1
                try:
                    result: HandoffResult = await workflow.execute_child_workflow(
                        HANDOFF_RUN[handoff],
                        HandoffInput(sd_id=sd.sd_id, session_id=session, options=request.options),
                        id=workflow_id_for(handoff, sd.sd_id),
                        task_queue=workflow.info().task_queue,
                        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                        static_summary=f"{handoff.value} {sd.sd_key}",
                    )
                except ChildWorkflowError as err:
                    record = self._rejection_record(handoff, attempt, err)
                    self._append(record)
                    reason = "; ".join(record.issues) or record.detail or "rejected"
                    self._status = self._status.model_copy(
                        update={"last_rejection": f"{handoff.value}: {reason}"}
                    )
                    holder = self._foreign_claim(err)
                    if holder is not None:
                        # Not a rejection: the claim is gone. Wait for reclaim, then run again
                        # without using up a retry.
                        self._lose_claim(holder)
                        continue
                else:
                    self._append(handoff_record(step, attempt, result, workflow.now()))
                    return
                if self._status.retries_used.get(handoff.value, 0) >= request.max_retries:
                    raise ApplicationError(
                        f"{handoff.value} for {sd.sd_key} was rejected {attempt} times; "
                        f"max_retries is {request.max_retries}: {self._status.last_rejection}",
                        self._status,
                        type=FailureType.RETRIES_EXHAUSTED,
                        non_retryable=True,
                    )
            awaiting_retry = False
            self._retry_requested = False
            await self._wait_for("retry", lambda: self._retry_requested)
            used = self._status.retries_used.get(handoff.value, 0)
            self._status = self._status.model_copy(
                update={"retries_used": {**self._status.retries_used, handoff.value: used + 1}}
            )

    def _rejection_record(
        self, handoff: HandoffType, attempt: int, err: ChildWorkflowError
    ) -> StepRecord:
        cause = err.cause
        if (
            isinstance(cause, ApplicationError)
            and cause.type == FailureType.HANDOFF_REJECTED
            and cause.details
        ):
            result = HandoffResult.model_validate(cause.details[0])
            return handoff_record(Step(handoff.value), attempt, result, workflow.now())
        message = getattr(cause, "message", None) or str(err)
        code = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
        return StepRecord(
            step=Step(handoff.value),
            outcome="rejected",
            attempt=attempt,
            failed_gate=code,
            issues=(message,),
            at=workflow.now(),
        )

    async def _wait_for(self, kind: str, condition: Callable[[], bool]) -> None:
        self._status = self._status.model_copy(update={"waiting_for": kind, "state": "waiting"})
        timeout = None
        if self._deadline is not None:
            timeout = max((self._deadline - workflow.now()).total_seconds(), 0.001)
        try:
            # Re-checked on every workflow task: a long wait (days for an approval) continues
            # as new when the server suggests it, instead of growing one history forever.
            await workflow.wait_condition(
                lambda: condition() or workflow.info().is_continue_as_new_suggested(),
                timeout=timeout,
            )
        except TimeoutError:
            raise DeadlinePassed from None
        if not condition():
            raise ContinueAsNewSuggested
        self._status = self._status.model_copy(update={"waiting_for": None, "state": "running"})

    async def _heartbeat(self, session: str, every: float) -> None:
        while True:
            if self._claim_lost is not None:
                await workflow.wait_condition(lambda: self._claim_lost is None)
            await workflow.sleep(every)
            if self._claim_lost is not None:
                continue
            result: ClaimResult = await self._activity(
                LifecycleActivities.heartbeat_sd_claim,
                ReleaseInput(session_id=session),
                summary="heartbeat claim",
            )
            if not result.success and workflow.patched(CLAIM_WATCH):
                self._lose_claim(result.claimed_by or "nobody (it was released)")

    def _lose_claim(self, holder: str) -> None:
        self._claim_lost = holder
        self._status = self._status.model_copy(update={"claim": f"claim lost to {holder}"})

    def _foreign_claim(self, err: ChildWorkflowError) -> str | None:
        """The session named by a handoff refused with CLAIMED_BY_OTHER_SESSION, else None."""
        cause = err.cause
        if not (
            isinstance(cause, ApplicationError)
            and cause.type == RefusalCode.CLAIMED_BY_OTHER_SESSION
        ):
            return None
        if not workflow.patched(CLAIM_WATCH):
            return None
        details = cause.details[0] if cause.details else None
        holder = details.get("claimed_by") if isinstance(details, dict) else None
        return str(holder or "another session")

    async def _release(self, session: str, reason: str) -> None:
        await self._activity(
            LifecycleActivities.release_sd,
            ReleaseInput(session_id=session, reason=reason),
            summary=f"release claim ({reason})",
        )

    async def _activity(self, method: Any, arg: BaseModel, *, summary: str) -> Any:
        try:
            return await workflow.execute_activity_method(
                method,
                arg,
                start_to_close_timeout=timedelta(seconds=15),
                retry_policy=ACTIVITY_RETRY,
                summary=summary,
            )
        except ActivityError as err:
            raise domain_failure(err) from err

    def _record_already_done(self, sd: LifecycleState, start: Step | None) -> None:
        done = STEPS if start is None else STEPS[: STEPS.index(start)]
        accepted = {a.handoff_type.value: a for a in sd.accepted}
        for step in done:
            previous = accepted.get(step.value)
            self._append(
                StepRecord(
                    step=step,
                    outcome="already_done",
                    normalized_score=previous.validation_score if previous else None,
                    handoff_id=previous.handoff_id if previous else None,
                    at=previous.accepted_at if previous else None,
                )
            )

    def _append(self, record: StepRecord) -> None:
        self._status = self._status.model_copy(update={"steps": [*self._status.steps, record]})
        workflow.set_current_details(
            "\n".join(
                f"- {r.step.value}: {r.outcome}"
                + (f" ({r.normalized_score:.1f})" if r.normalized_score is not None else "")
                for r in self._status.steps
            )
        )

    def _finish(self, state: str) -> LifecycleStatus:
        self._status = self._status.model_copy(update={"state": state, "waiting_for": None})
        workflow.upsert_search_attributes([OUTCOME.value_set(state)])
        # The Web UI's details panel names the outcome first, then each step.
        workflow.set_current_details(
            f"**SD-LIFECYCLE {state}** for {self._status.sd_key or self._status.sd_id}"
            + (f": {self._status.last_rejection}" if state == "rejected_by_lead" else "")
            + "\n\n"
            + "\n".join(
                f"- {r.step.value}: {r.outcome}"
                + (f" ({r.normalized_score:.1f})" if r.normalized_score is not None else "")
                for r in self._status.steps
            )
        )
        metrics.record_lifecycle(state)
        return self._status
