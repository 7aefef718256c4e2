"""A handoff's result: built from the applied decision, or from the accepted record of an earlier
run; and the apply step itself, which applies a verdict recorded in history.

Workflow code: deterministic, no I/O.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.agent_inputs import PreparedHandoff, SubAgentRecord
    from activities.commit import CommitDecisionInput, CommitOutcome
    from activities.handoff import (
        ApplyDecisionInput,
        CommitHandoffInput,
        CommitHandoffResult,
        HandoffActivities,
        HandoffDecision,
    )
    from leo.domain.gates import GateOutcome
    from leo.domain.handoff_messages import HandoffResult
    from leo.domain.handoffs import HandoffType
    from leo.domain.snapshot import AcceptedRecord, HandoffSnapshot
    from leo.domain.verdicts import AggregateVerdict, SubAgentResult, Verdict

# Patch id: the gates' verdict is its own step, recorded before it is applied; an accepted
# handoff started again returns its accepted record.
DECIDE_ONCE = "decide-once"


async def apply_decision(
    handoff: HandoffType,
    commit: CommitHandoffInput,
    decision: HandoffDecision,
    retry_policy: RetryPolicy,
    *,
    records: list[SubAgentRecord] | None = None,
) -> CommitHandoffResult:
    """A normal activity, scheduled in the workflow task that records the decision (a local
    activity's marker): every retry (a lost reply, a crashed worker, a deadlock) applies that
    recorded verdict and never evaluates the gates again.

    With `records` (issue 13, patch lean-handoff), the step is `commit_handoff_decision`: it
    gets only the transition context and the new result rows, records both in one transaction,
    and returns only what it wrote; the result is put together here from the recorded
    decision, so nothing is carried through history twice."""
    snapshot = commit.snapshot
    summary = (
        f"{handoff.value} transition" if decision.accepted else f"record {handoff.value} rejection"
    )
    if records is not None:
        outcome: CommitOutcome = await workflow.execute_activity_method(
            HandoffActivities.commit_handoff_decision,
            CommitDecisionInput(
                handoff_type=handoff,
                sd_id=snapshot.sd.id,
                prd_id=snapshot.prd.id if snapshot.prd else None,
                session_id=commit.session_id,
                phase=snapshot.phase,
                accepted=decision.accepted,
                context=decision.context,
                sub_agent_results=records,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=timedelta(seconds=120),
            retry_policy=retry_policy,
            summary=summary,
        )
        return CommitHandoffResult(
            accepted=decision.accepted,
            evaluation=decision.evaluation,
            orchestration=decision.orchestration,
            transition=outcome.transition,
            rejection_handoff_id=outcome.rejection_handoff_id,
        )
    result: CommitHandoffResult = await workflow.execute_activity_method(
        HandoffActivities.apply_handoff_decision,
        ApplyDecisionInput(
            handoff_type=handoff,
            sd_id=snapshot.sd.id,
            prd_id=snapshot.prd.id if snapshot.prd else None,
            session_id=commit.session_id,
            decision=decision,
        ),
        start_to_close_timeout=timedelta(seconds=30),
        schedule_to_close_timeout=timedelta(seconds=120),
        retry_policy=retry_policy,
        summary=summary,
    )
    return result


def handoff_result(
    handoff: HandoffType,
    snapshot: HandoffSnapshot,
    sub_agents: list[SubAgentResult],
    commit: CommitHandoffResult,
) -> HandoffResult:
    info = workflow.info()
    evaluation = commit.evaluation
    transition = commit.transition
    post: dict[str, Any] = (transition.post_state or {}) if transition else {}
    return HandoffResult(
        handoff_type=handoff,
        sd_id=snapshot.sd.id,
        sd_key=snapshot.sd.sd_key,
        sd_type=snapshot.sd.sd_type,
        accepted=commit.accepted,
        outcome="accepted" if commit.accepted else "rejected",
        normalized_score=evaluation.normalized_score,
        threshold=evaluation.threshold,
        failed_gate=evaluation.failed_gate,
        issues=evaluation.issues,
        gates=evaluation.gates,
        sub_agents=tuple(sub_agents),
        sub_agent_verdict=commit.orchestration,
        audit_id=str(transition.audit_id) if transition and transition.audit_id else None,
        handoff_id=(
            str(transition.handoff_id)
            if transition and transition.handoff_id
            else commit.rejection_handoff_id
        ),
        idempotent_hit=bool(transition and transition.idempotent_hit),
        previous_phase=snapshot.sd.current_phase,
        new_phase=str(post.get("sd_phase", snapshot.sd.current_phase)),
        new_status=str(post.get("sd_status", snapshot.sd.status)),
        transition_version=int(
            (transition.transition_version if transition else None)
            or snapshot.sd.transition_version
        ),
        workflow_id=info.workflow_id,
        run_id=info.run_id,
    )


def accepted_result(
    handoff: HandoffType, snapshot: HandoffSnapshot, record: AcceptedRecord
) -> HandoffResult:
    """The result of a handoff that an earlier run already had accepted: its record, as
    stored, marked as an idempotent hit. Nothing ran again."""
    info = workflow.info()
    verdicts = list(record.sub_agents.values())
    return HandoffResult(
        handoff_type=handoff,
        sd_id=snapshot.sd.id,
        sd_key=snapshot.sd.sd_key,
        sd_type=snapshot.sd.sd_type,
        accepted=True,
        outcome="accepted",
        normalized_score=record.normalized_score,
        threshold=record.threshold if record.threshold is not None else 0.0,
        gates=tuple(GateOutcome.model_validate(g) for g in record.gates),
        sub_agent_verdict=AggregateVerdict(
            verdict=Verdict(record.sub_agent_verdict or Verdict.PASS.value),
            can_proceed=True,
            confidence=0,
            message=f"as recorded when {handoff.value} was accepted",
            total_agents=len(verdicts),
            passed=verdicts.count(Verdict.PASS.value),
            failed=verdicts.count(Verdict.FAIL.value),
            blocked=verdicts.count(Verdict.BLOCKED.value),
        ),
        audit_id=record.audit_id,
        handoff_id=record.handoff_id,
        idempotent_hit=True,
        previous_phase=record.previous_phase or snapshot.sd.current_phase,
        new_phase=record.new_phase or snapshot.sd.current_phase,
        new_status=record.new_status or snapshot.sd.status,
        transition_version=record.transition_version or snapshot.sd.transition_version,
        workflow_id=record.workflow_id or info.workflow_id,
        run_id=record.run_id or info.run_id,
    )


def carry_over(
    prepared: PreparedHandoff, carried: dict[str, tuple[str | None, SubAgentResult]]
) -> PreparedHandoff:
    """A handoff that judges again (the SD changed while it ran) keeps the result of every
    agent whose input did not change (the same reuse key): it does not run again. Marked
    reused: its row was recorded with the refused commit. An agent without a reuse key (one
    whose verdict may depend on the world and has no fingerprint of it) runs again."""
    if not carried:
        return prepared
    ready = dict(prepared.ready)
    for code, (reuse_key, result) in carried.items():
        key = prepared.keys.get(code)
        if (
            code not in ready
            and key is not None
            and reuse_key is not None
            and key.reuse_key == reuse_key
        ):
            ready[code] = result.model_copy(update={"reused": True})
    return prepared.model_copy(update={"ready": ready})
