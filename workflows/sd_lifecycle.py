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
from datetime import timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.common import VersioningBehavior, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)

with workflow.unsafe.imports_passed_through():
    from activities.lifecycle import (
        ClaimInput,
        ClaimResult,
        LifecycleActivities,
        LifecycleState,
        LoadLifecycleStateInput,
        ReleaseInput,
    )
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
        LifecycleInput,
        LifecycleResume,
        LifecycleStatus,
        StepRecord,
    )
    from leo.domain.refusals import FailureType, RefusalCode
    from workflows.registry import HANDOFF_RUN
    from workflows.sd_lifecycle_base import (
        ACTIVITY_RETRY,
        CHILD_CONFLICT,
        CLAIM_WATCH,
        RESUME_LOST_CLAIM,
        ContinueAsNewSuggested,
        DeadlinePassed,
        claim_holder,
        handoff_record,
    )
    from workflows.sd_lifecycle_messages import LifecycleMessages
    from workflows.steps import HANDOFF_TYPE, SD_ID, SD_TYPE, domain_failure


@workflow.defn(name=LIFECYCLE)
class SdLifecycleWorkflow(LifecycleMessages):
    @workflow.run
    async def run(self, request: LifecycleInput) -> LifecycleStatus:
        if request.resume is not None and workflow.info().continued_run_id is None:
            # Only a run continued as new carries a resume state: a client's would skip waits.
            raise ApplicationError(
                "resume is set only by the lifecycle itself when it continues as new; "
                "start the lifecycle without it",
                type=RefusalCode.INVALID_INPUT,
                non_retryable=True,
            )
        resume = request.resume
        # A continued run answers messages "continuing as new" until it is back in its wait.
        self._closing = resume is not None
        sd, session = await self._load(request)
        start = START_STEP[sd.current_phase]
        if resume is None:
            self._record_already_done(sd, start)
        else:
            start = self._resume_at(resume, start)
        if start is None:
            return self._finish("completed")

        if resume is not None and resume.claim_lost_to is not None:
            # Continued as new while the claim was lost: still lost, still waiting for reclaim.
            self._lose_claim(resume.claim_lost_to)
        else:
            await self._claim(sd, session, resumed=resume is not None)
        self._closing = False
        heartbeat = asyncio.create_task(
            self._heartbeat(sd.sd_id, session, request.claim_heartbeat_seconds)
        )
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
                type=RefusalCode.INVALID_PHASE,
                non_retryable=True,
            )
        return sd, session

    async def _claim(self, sd: LifecycleState, session: str, *, resumed: bool) -> None:
        try:
            await self._activity(
                LifecycleActivities.claim_sd,
                ClaimInput(sd_id=sd.sd_id, session_id=session),
                summary=f"claim {sd.sd_key} for {session}",
            )
        except ApplicationError as err:
            # A continued run whose claim was taken over since the last heartbeat: the claim is
            # lost, as a heartbeat would have found; wait for `reclaim`, do not fail.
            if not (
                resumed
                and err.type == RefusalCode.CLAIMED_BY_OTHER_SESSION
                and workflow.patched(RESUME_LOST_CLAIM)
            ):
                raise
            self._lose_claim(claim_holder(err))
            return
        self._status = self._status.model_copy(update={"claim": f"held by {session}"})

    async def _continue_as_new(self, request: LifecycleInput) -> NoReturn:
        """Keep the claim; the next run picks up this wait where it is, with every message this
        run accepted. Updates arriving from now on are refused with a retryable answer."""
        self._closing = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        status = self._status
        decision, approval = self._decision or (None, None)
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
                        exec_report=self._exec_report,
                        decision=decision,
                        approval=approval,
                        retry_requested=self._retry_requested,
                        steps_omitted=status.steps_omitted,
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
        attempt = self._attempts(step)
        # Continued as new while waiting for `retry`: wait again before the next attempt.
        awaiting_retry, self._resume_retry = self._resume_retry, False
        while True:
            if not awaiting_retry:
                if self._claim_lost is not None:
                    # Never start a handoff without the claim: it would only be refused.
                    await self._wait_for("reclaim", lambda: self._claim_lost is None)
                attempt += 1
                try:
                    result = await self._run_child(handoff, sd, request, session)
                except ChildWorkflowError as err:
                    self._retry_requested = False
                    self._append(self._rejection_record(handoff, attempt, err))
                    record = self._status.steps[-1]
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
            # A retry carried over from the previous run (accepted while it closed) counts.
            awaiting_retry = False
            await self._wait_for("retry", lambda: self._retry_requested)
            self._retry_requested = False
            used = self._status.retries_used.get(handoff.value, 0)
            self._status = self._status.model_copy(
                update={"retries_used": {**self._status.retries_used, handoff.value: used + 1}}
            )

    async def _run_child(
        self, handoff: HandoffType, sd: LifecycleState, request: LifecycleInput, session: str
    ) -> HandoffResult:
        """The handoff as a child workflow. When its id is taken (a standalone `leo handoff` of
        the same SD is running, or was accepted since the lifecycle loaded the SD), wait for that
        run to end and start again: a start after an accepted run returns its accepted record,
        one after a failed run judges again."""
        reuse = WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
        delay = 1.0
        while True:
            try:
                return await workflow.execute_child_workflow(
                    HANDOFF_RUN[handoff],
                    HandoffInput(sd_id=sd.sd_id, session_id=session, options=request.options),
                    id=workflow_id_for(handoff, sd.sd_id),
                    task_queue=workflow.info().task_queue,
                    id_reuse_policy=reuse,
                    static_summary=f"{handoff.value} {sd.sd_key}",
                )
            except WorkflowAlreadyStartedError:
                if not workflow.patched(CHILD_CONFLICT):
                    raise
            if self._deadline is not None and workflow.now() >= self._deadline:
                raise DeadlinePassed
            await workflow.sleep(delay, summary=f"{handoff.value} is running elsewhere")
            delay = min(delay * 2, 30.0)
            reuse = WorkflowIDReusePolicy.ALLOW_DUPLICATE

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

    async def _heartbeat(self, sd_id: str, session: str, every: float) -> None:
        while True:
            if self._claim_lost is not None:
                await workflow.wait_condition(lambda: self._claim_lost is None)
            await workflow.sleep(every)
            if self._claim_lost is not None:
                continue
            result: ClaimResult = await self._activity(
                LifecycleActivities.heartbeat_sd_claim,
                ReleaseInput(session_id=session, sd_id=sd_id),
                summary="heartbeat claim",
            )
            if not result.success and workflow.patched(CLAIM_WATCH):
                self._lose_claim(result.claimed_by or "nobody (it was released)")


# What a versioned worker (LEO_BUILD_ID) registers instead: the same workflow, declared
# AUTO_UPGRADE, so that a lifecycle moves to the current build at its next workflow task (its
# waits last days; its changes are patched, and the replay corpus checks them). The declaration
# is refused by an unversioned worker, hence a class of its own.
@workflow.defn(name=LIFECYCLE, versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class AutoUpgradeSdLifecycleWorkflow(SdLifecycleWorkflow):
    @workflow.run
    async def run(self, request: LifecycleInput) -> LifecycleStatus:
        return await super().run(request)
