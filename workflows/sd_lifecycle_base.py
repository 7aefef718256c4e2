"""SD-LIFECYCLE's state and the helpers its chain and its message handlers share: the status,
the claim, activity calls and step records (`workflows/sd_lifecycle.py` is the workflow)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.lifecycle import (
        LifecycleActivities,
        LifecycleState,
        ReleaseInput,
    )
    from leo.domain.handoff_messages import HandoffResult
    from leo.domain.handoffs import (
        LIFECYCLE,
        START_STEP,
        STEPS,
        HandoffType,
        Step,
    )
    from leo.domain.lifecycle_messages import (
        ApprovalInput,
        ExecReport,
        LifecycleResume,
        LifecycleStatus,
        StepRecord,
        bounded_steps,
    )
    from leo.domain.refusals import (
        LIFECYCLE_ACTIVITY_ERROR_TYPES,
        FailureType,
        RefusalCode,
        UpdateRefusal,
    )
    from leo.infra import metrics
    from workflows.steps import OUTCOME, domain_failure

# Patch id: a refused claim heartbeat (or a handoff refused for a foreign claim) marks the claim
# lost; the lifecycle starts no handoff until `reclaim` succeeds.
CLAIM_WATCH = "claim-watch"
# Patch ids (issue 17): a continued run resumes at the step it was at whatever it waited for
# (also `reclaim`); a continued run whose claim was taken over waits for `reclaim` instead of
# failing; a child handoff that is already running (or completed) is waited for and started
# again, instead of failing the lifecycle.
RESUME_AT_STEP = "lifecycle-resume-at-step"
RESUME_LOST_CLAIM = "lifecycle-resume-lost-claim"
CHILD_CONFLICT = "lifecycle-child-conflict"
# Patch id: `approve` and `reject` record LEAD's decision in PostgreSQL before acknowledging it.
LEAD_DECISION = "lifecycle-lead-decision"
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


def claim_holder(err: ApplicationError) -> str:
    """The session a CLAIMED_BY_OTHER_SESSION refusal names (its details' `claimed_by`)."""
    details = err.details[0] if err.details else None
    holder = details.get("claimed_by") if isinstance(details, dict) else None
    return str(holder or "another session")


class LifecycleBase:
    """The lifecycle's state; `SdLifecycleWorkflow` adds the chain, `LifecycleMessages` the
    query and updates."""

    def __init__(self) -> None:
        self._status = LifecycleStatus()
        self._exec_report: ExecReport | None = None
        self._exec_report_in_flight = False
        self._decision: tuple[str, ApprovalInput] | None = None
        self._decision_in_flight = False
        self._retry_requested = False
        self._resume_retry = False
        self._deadline: datetime | None = None
        # The session that took the SD's claim over (or "nobody" when it was released).
        self._claim_lost: str | None = None
        # Set once the run is continuing as new: updates are refused (retryably) from then on.
        self._closing = False

    def _resume_at(self, resume: LifecycleResume, phase_start: Step | None) -> Step | None:
        """Restore what the previous run accepted and say where this run starts: at the step the
        previous run was at, whatever it waited for, unless the SD has moved past it."""
        self._exec_report = resume.exec_report
        if resume.decision is not None and resume.approval is not None:
            self._decision = (resume.decision, resume.approval)
        self._retry_requested = resume.retry_requested
        step = resume.current_step
        if step is None:
            return phase_start
        if resume.waiting_for == "retry":
            # The SD has not moved since the rejection: wait for `retry` again, do not re-run.
            self._resume_retry = True
            return step
        if phase_start is None or STEPS.index(phase_start) >= STEPS.index(step):
            return phase_start
        # The SD's phase points at an earlier step (EXEC for EXEC-TO-PLAN, LEAD_FINAL for
        # LEAD-FINAL-APPROVAL): going back there would wait again for a message already taken.
        return step if workflow.patched(RESUME_AT_STEP) else phase_start

    def _attempts(self, step: Step) -> int:
        """How many times this handoff step has run (dropped old records included)."""
        return max(
            (
                r.attempt
                for r in self._status.steps
                if r.step is step and r.outcome in ("accepted", "rejected")
            ),
            default=0,
        )

    def _sd_name(self) -> str:
        """The SD this lifecycle is for, also before it has loaded it (from its workflow id)."""
        return (
            self._status.sd_key
            or self._status.sd_id
            or workflow.info().workflow_id.removeprefix(f"{LIFECYCLE}:")
        )

    def _refuse_while_closing(self, what: str) -> None:
        if self._closing:
            raise ApplicationError(
                f"the lifecycle of {self._sd_name()} is continuing as new: nothing was done; "
                f"send {what} again in a moment",
                type=UpdateRefusal.CONTINUING_AS_NEW,
                non_retryable=True,
            )

    def _require_waiting(self, kind: str, what: str) -> None:
        self._refuse_while_closing(what)
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
        return claim_holder(cause)

    def _rejection_record(
        self, handoff: HandoffType, attempt: int, err: ChildWorkflowError
    ) -> StepRecord:
        cause = err.cause
        if (
            isinstance(cause, ApplicationError)
            and cause.type == FailureType.HANDOFF_REJECTED
            and cause.details
        ):
            try:
                result = HandoffResult.model_validate(cause.details[0])
            except ValidationError:
                pass  # a result this code cannot read is still a rejection: the generic record
            else:
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
        # A BYPASS-COMPLETION skipped the steps from its phase on: they show as bypassed, never
        # as done (issue 20).
        bypass = sd.bypass
        skipped_from = START_STEP.get(bypass.from_phase) if bypass is not None else None
        for step in done:
            previous = accepted.get(step.value)
            if (
                bypass is not None
                and previous is None
                and (skipped_from is None or STEPS.index(step) >= STEPS.index(skipped_from))
            ):
                self._append(
                    StepRecord(
                        step=step,
                        outcome="bypassed",
                        detail=f"BYPASS-COMPLETION by {bypass.actor} "
                        f"(database role {bypass.db_role or 'unknown'}): {bypass.reason}",
                        handoff_id=bypass.handoff_id,
                        at=bypass.accepted_at,
                    )
                )
                continue
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
        steps, dropped = bounded_steps([*self._status.steps, record])
        self._status = self._status.model_copy(
            update={"steps": steps, "steps_omitted": self._status.steps_omitted + dropped}
        )
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
