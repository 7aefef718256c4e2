"""The gates' verdict over a snapshot and the agents' results, and the models the handoff steps
exchange with the workflow. A pure function of its input: the workflow's history holds the
snapshot and every result, so evaluating it again gives the same verdict (for built-in gates;
a plugin gate that reads the world may not, and the database keeps the first one committed).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from activities.agent_inputs import SubAgentRecord
from db.transitions import TransitionContext, TransitionResult
from leo.domain.budget import check_result_budget
from leo.domain.gates import GateOutcome, GateSummary
from leo.domain.handoffs import HandoffType
from leo.domain.snapshot import HandoffSnapshot
from leo.domain.verdicts import AggregateVerdict, SubAgentResult, aggregate
from leo.gates.core import (
    GateContext,
    GateEvaluation,
    GateRegistry,
    bounded_gate_summary,
    evaluate_gates,
)
from leo.gates.trim import fit_evaluation


class LoadSnapshotInput(BaseModel):
    handoff_type: HandoffType
    sd_id: str
    session_id: str | None = None
    extra_sub_agents: list[str] = Field(default_factory=list)
    # The handoff attempt (the run's start time); set by prepare_handoff's callers.
    attempt: str | None = None


class CommitHandoffInput(BaseModel):
    handoff_type: HandoffType
    snapshot: HandoffSnapshot
    sub_agents: list[SubAgentResult]
    request_id: str
    session_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class DecideAndCommitInput(BaseModel):
    """Issue 19's last step: the gates over the snapshot and the results, and the verdict
    committed with every new result row. A local activity: its input is not kept in history."""

    commit: CommitHandoffInput
    sub_agent_results: list[SubAgentRecord] = Field(default_factory=list)


class HandoffDecision(BaseModel):
    """What the gates decided, once per handoff attempt, and exactly what to apply: the
    transition context (request id, expected version, bounded gate summary) or the rejection."""

    model_config = ConfigDict(frozen=True)

    accepted: bool
    evaluation: GateEvaluation
    orchestration: AggregateVerdict
    context: TransitionContext


class ApplyDecisionInput(BaseModel):
    handoff_type: HandoffType
    sd_id: str
    prd_id: str | None = None
    session_id: str | None = None
    decision: HandoffDecision


class CommitHandoffResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    accepted: bool
    evaluation: GateEvaluation
    orchestration: AggregateVerdict
    transition: TransitionResult | None = None
    rejection_handoff_id: str | None = None


def decide(gates: GateRegistry, request: CommitHandoffInput) -> HandoffDecision:
    """The gates' verdict and the context to commit it with. Raises BudgetExceededError when
    the result could not be carried (before anything is applied)."""
    orchestration = aggregate(request.sub_agents)
    ctx = GateContext(
        snapshot=request.snapshot,
        sub_agents=tuple(request.sub_agents),
        orchestration=orchestration,
    )
    evaluation = evaluate_gates(gates.gates(request.handoff_type), ctx)
    metadata = {
        **request.metadata,
        "sub_agents": {r.code: r.verdict.value for r in request.sub_agents},
    }
    context = TransitionContext(
        request_id=request.request_id,
        expected_version=request.snapshot.sd.transition_version,
        # Bounded, so that a verbose gate can neither make the transition refuse nor the
        # rejection go unrecorded (the handoff record holds at most 100 KB).
        gate_summary=bounded_gate_summary(evaluation.summary(orchestration.verdict.value)),
        metadata=metadata,
    )
    # The stored summary above is bounded on its own; the typed result gets the gates' share.
    evaluation = fit_evaluation(evaluation)
    # Before anything is applied: a run whose result Temporal could not carry must not
    # apply the transition and then wedge (the database and Temporal would disagree).
    check_result_budget(request.sub_agents, evaluation, orchestration, context)
    if not evaluation.passed:
        reason = (
            f"{evaluation.failed_gate}: {'; '.join(evaluation.issues)}"
            if evaluation.issues
            else f"gate {evaluation.failed_gate} failed"
        )
        context = context.model_copy(update={"rejection_reason": reason[:2000]})
    return HandoffDecision(
        accepted=evaluation.passed,
        evaluation=evaluation,
        orchestration=orchestration,
        context=context,
    )


def recorded_evaluation(summary: dict[str, Any] | None, sd_type: str) -> GateEvaluation:
    """The gates' evaluation as the first commit stored it (the handoff record's summary): what
    a repeat reports when its own evaluation gave another verdict."""
    stored = GateSummary.model_validate(summary or {"passed": False})
    gates = []
    for raw in stored.gate_results:
        try:
            gates.append(GateOutcome.model_validate(raw))
        except ValueError:
            continue
    failed = [g for g in gates if g.name == stored.failed_gate]
    return fit_evaluation(
        GateEvaluation(
            passed=stored.passed,
            normalized_score=stored.normalized_score,
            threshold=stored.threshold if stored.threshold is not None else 0.0,
            sd_type=stored.sd_type or sd_type,
            failed_gate=stored.failed_gate,
            gates=tuple(gates),
            issues=failed[0].issues if failed else (),
        )
    )
