"""LEO's built-in gates: which gates each handoff has and what each one checks."""

from __future__ import annotations

from typing import Any

import pytest

from leo.domain.gates import GateStatus
from leo.domain.handoffs import HandoffType
from leo.domain.verdicts import Verdict, aggregate
from leo.gates import builtin
from leo.gates.core import GateContext, evaluate_gates, validate_gate_result
from tests.support import builders

EXPECTED_GATES = {
    HandoffType.LEAD_TO_PLAN: [
        ("GATE_SD_TRANSITION_READINESS", True),
        ("SUB_AGENT_ORCHESTRATION", True),
    ],
    HandoffType.PLAN_TO_EXEC: [
        ("PREREQUISITE_HANDOFF_CHECK", True),
        ("GATE_PRD_EXISTS", True),
        ("GATE_USER_STORIES_DEFINED", True),
        ("SUB_AGENT_ORCHESTRATION", True),
        ("GATE_DELIVERABLES_PLANNING", False),
    ],
    HandoffType.EXEC_TO_PLAN: [
        ("PREREQUISITE_HANDOFF_CHECK", True),
        ("SUB_AGENT_ORCHESTRATION", True),
        ("MANDATORY_TESTING_VALIDATION", True),
    ],
    HandoffType.PLAN_TO_LEAD: [
        ("PREREQUISITE_HANDOFF_CHECK", True),
        ("SUB_AGENT_ORCHESTRATION", True),
        ("RETROSPECTIVE_QUALITY_GATE", True),
        ("USER_STORY_EXISTENCE_GATE", True),
    ],
    HandoffType.LEAD_FINAL_APPROVAL: [
        ("PLAN_TO_LEAD_HANDOFF_EXISTS", True),
        ("SUB_AGENT_ORCHESTRATION", True),
        ("USER_STORIES_COMPLETE", True),
        ("RETROSPECTIVE_EXISTS", True),
    ],
}


@pytest.mark.parametrize("handoff", list(HandoffType))
def test_default_registry_gates_per_handoff(handoff: HandoffType) -> None:
    gates = builtin.default_registry().gates(handoff)
    assert [(g.name, g.required) for g in gates] == EXPECTED_GATES[handoff]
    assert all(g.weight == 1.0 for g in gates)


def run(check: Any, ctx: GateContext) -> dict[str, Any]:
    raw: dict[str, Any] = check(ctx)
    parsed, problem = validate_gate_result(raw)
    assert problem is None, problem
    assert parsed is not None
    return raw


def ctx_of(**snapshot_fields: Any) -> GateContext:
    return builders.gate_context(builders.snapshot(**snapshot_fields))


# --- prerequisite ---------------------------------------------------------------------------


def test_prerequisite_needs_an_accepted_previous_handoff() -> None:
    gate = builtin.prerequisite(HandoffType.LEAD_TO_PLAN)
    assert gate.name == "PREREQUISITE_HANDOFF_CHECK"

    accepted = ctx_of(handoffs=(builders.handoff(HandoffType.LEAD_TO_PLAN),))
    assert run(gate.check, accepted) == {
        "passed": True,
        "score": 100,
        "max_score": 100,
        "issues": [],
    }

    rejected = ctx_of(handoffs=(builders.handoff(HandoffType.LEAD_TO_PLAN, status="rejected"),))
    out = run(gate.check, rejected)
    assert not out["passed"]
    assert out["score"] == 0
    assert out["issues"] == [
        "ERR_CHAIN_INCOMPLETE: no accepted LEAD-TO-PLAN handoff for SD-UNIT-001"
    ]

    other = ctx_of(handoffs=(builders.handoff(HandoffType.PLAN_TO_EXEC),))
    assert not run(gate.check, other)["passed"]


# --- sub-agent orchestration ----------------------------------------------------------------


def orchestration_ctx(*results: Any) -> GateContext:
    return builders.gate_context(
        builders.snapshot(), sub_agents=tuple(results), orchestration=aggregate(results)
    )


def test_orchestration_gate_passes_without_agents() -> None:
    no_aggregate = builders.gate_context(builders.snapshot())
    assert run(builtin.sub_agent_orchestration, no_aggregate)["passed"]
    assert run(builtin.sub_agent_orchestration, orchestration_ctx())["passed"]


def test_orchestration_gate_passes_on_pass_and_warns_on_proceedable_verdicts() -> None:
    ok = run(
        builtin.sub_agent_orchestration, orchestration_ctx(builders.sub_agent_result("A", "PASS"))
    )
    assert ok["passed"]
    assert ok["warnings"] == []

    warned = run(
        builtin.sub_agent_orchestration,
        orchestration_ctx(builders.sub_agent_result("A", "FAIL", priority=50)),
    )
    assert warned["passed"]
    assert warned["score"] == 100
    assert warned["warnings"] == ["lower-priority sub-agents failed: A"]


def test_orchestration_gate_fails_when_blocked() -> None:
    out = run(
        builtin.sub_agent_orchestration,
        orchestration_ctx(builders.sub_agent_result("SECURITY", "ERROR", priority=90)),
    )
    assert not out["passed"]
    assert out["score"] == 0
    assert out["issues"] == [
        "sub-agent orchestration BLOCKED: high-priority sub-agents failed: SECURITY (ERROR)"
    ]


# --- LEAD-TO-PLAN readiness -----------------------------------------------------------------


def test_transition_readiness() -> None:
    assert run(builtin.transition_readiness, ctx_of())["score"] == 100

    no_criteria = ctx_of(sd=builders.sd(success_criteria=[], success_metrics=[]))
    out = run(builtin.transition_readiness, no_criteria)
    assert out["passed"]
    assert out["score"] == 90
    assert out["warnings"] == ["no success criteria or metrics"]

    metrics_only = ctx_of(sd=builders.sd(success_criteria=[], success_metrics=["p95 < 1s"]))
    assert run(builtin.transition_readiness, metrics_only)["score"] == 100

    bare = ctx_of(sd=builders.sd(success_criteria=[], scope="  "))
    out = run(builtin.transition_readiness, bare)
    assert out["score"] == 80
    assert out["warnings"] == ["no success criteria or metrics", "no scope"]

    no_description = ctx_of(sd=builders.sd(description=" "))
    out = run(builtin.transition_readiness, no_description)
    assert not out["passed"]
    assert out["score"] == 0
    assert out["issues"] == ["title and description are required"]


# --- PLAN-TO-EXEC ---------------------------------------------------------------------------


def test_prd_exists() -> None:
    assert run(builtin.prd_exists, ctx_of())["passed"]
    out = run(builtin.prd_exists, ctx_of(prd=None))
    assert not out["passed"]
    assert out["issues"] == ["no PRD for SD-UNIT-001"]


def test_stories_defined_scores_acceptance_criteria_coverage() -> None:
    assert run(builtin.stories_defined, ctx_of())["score"] == 100

    out = run(builtin.stories_defined, ctx_of(stories=()))
    assert not out["passed"]
    assert out["issues"] == ["no user stories"]

    stories = (
        builders.story(1),
        builders.story(2),
        builders.story(3),
        builders.story(4, acceptance_criteria=[]),
    )
    out = run(builtin.stories_defined, ctx_of(stories=stories))
    assert not out["passed"]
    assert out["score"] == 75
    assert out["issues"] == ["SD-UNIT-001:US-004 has no acceptance criteria"]


def test_deliverables_planning() -> None:
    assert run(builtin.deliverables_planning, ctx_of())["passed"]
    for ctx in (ctx_of(prd=None), ctx_of(prd=builders.prd(functional_requirements=[]))):
        out = run(builtin.deliverables_planning, ctx)
        assert not out["passed"]
        assert out["score"] == 50
        assert out["issues"] == ["the PRD lists no functional requirements"]


# --- EXEC-TO-PLAN ---------------------------------------------------------------------------


@pytest.mark.parametrize("verdict", ["PASS", "CONDITIONAL_PASS"])
def test_mandatory_testing_passes_on_this_attempts_testing_verdict(verdict: str) -> None:
    ctx = builders.gate_context(
        builders.snapshot(), sub_agents=(builders.sub_agent_result("TESTING", verdict),)
    )
    assert run(builtin.mandatory_testing, ctx)["passed"]


@pytest.mark.parametrize("verdict", ["FAIL", "ERROR", "WARNING", "BLOCKED"])
def test_mandatory_testing_fails_on_other_verdicts_even_with_old_evidence(verdict: str) -> None:
    ctx = builders.gate_context(
        builders.snapshot(evidence=(builders.evidence("TESTING", "PASS"),)),
        sub_agents=(builders.sub_agent_result("TESTING", verdict),),
    )
    out = run(builtin.mandatory_testing, ctx)
    assert not out["passed"]
    assert out["issues"] == [f"ERR_TESTING_REQUIRED: TESTING verdict is {verdict}"]


def test_mandatory_testing_falls_back_to_recorded_evidence() -> None:
    not_run = builders.sub_agent_result("TESTING", Verdict.BLOCKED, ran=False)
    recorded = builders.snapshot(evidence=(builders.evidence("TESTING", "PASS"),))
    assert run(builtin.mandatory_testing, builders.gate_context(recorded, sub_agents=(not_run,)))[
        "passed"
    ]
    assert run(builtin.mandatory_testing, builders.gate_context(recorded))["passed"]

    failing = builders.snapshot(evidence=(builders.evidence("TESTING", "FAIL"),))
    other = builders.snapshot(evidence=(builders.evidence("SECURITY", "PASS"),))
    for snap in (failing, other, builders.snapshot()):
        out = run(builtin.mandatory_testing, builders.gate_context(snap))
        assert not out["passed"]
        assert out["issues"] == [
            "ERR_TESTING_REQUIRED: no passing TESTING result recorded in phase PLAN_VERIFY"
        ]


def test_mandatory_testing_refuses_testing_evidence_from_another_phase() -> None:
    # A PLAN_PRD TESTING PASS ("the PRD lists test scenarios") is no proof of testing at
    # EXEC-TO-PLAN, however recent.
    planning = builders.snapshot(evidence=(builders.evidence("TESTING", "PASS", phase="PLAN_PRD"),))
    out = run(builtin.mandatory_testing, builders.gate_context(planning))
    assert not out["passed"]
    assert out["issues"] == [
        "ERR_TESTING_REQUIRED: no passing TESTING result recorded in phase PLAN_VERIFY"
    ]

    # The newest result in the right phase decides, whatever other phases say.
    both = builders.snapshot(
        evidence=(
            builders.evidence("TESTING", "FAIL", phase="PLAN_VERIFY", minutes=1),
            builders.evidence("TESTING", "PASS", phase="PLAN_PRD", minutes=2),
        )
    )
    assert not run(builtin.mandatory_testing, builders.gate_context(both))["passed"]
    verified = builders.snapshot(
        evidence=(
            builders.evidence("TESTING", "FAIL", phase="PLAN_VERIFY", minutes=1),
            builders.evidence("TESTING", "PASS", phase="PLAN_VERIFY", minutes=2),
        )
    )
    assert run(builtin.mandatory_testing, builders.gate_context(verified))["passed"]


def test_retrospective_quality_gate_fails_below_the_minimum_quality() -> None:
    # A documentation SD whose retrospective scored 0 must not complete.
    docs = builders.snapshot(
        HandoffType.PLAN_TO_LEAD,
        sd_type="documentation",
        retrospectives=(builders.retrospective(0),),
        handoffs=(builders.handoff(HandoffType.EXEC_TO_PLAN),),
    )
    out = run(builtin.retrospective_quality, builders.gate_context(docs))
    assert not out["passed"]
    assert out["issues"] == [
        "retrospective quality 0 is below the minimum of 50 for documentation SDs"
    ]
    evaluation = evaluate_gates(
        builtin.default_registry().gates(HandoffType.PLAN_TO_LEAD), builders.gate_context(docs)
    )
    assert not evaluation.passed
    assert evaluation.failed_gate == "RETROSPECTIVE_QUALITY_GATE"

    at_minimum = builders.snapshot(
        HandoffType.PLAN_TO_LEAD,
        sd_type="documentation",
        retrospectives=(builders.retrospective(50),),
    )
    out = run(builtin.retrospective_quality, builders.gate_context(at_minimum))
    assert out["passed"] and out["score"] == 50


def test_user_stories_complete_fails_on_a_blocked_story() -> None:
    blocked = builders.snapshot(
        HandoffType.LEAD_FINAL_APPROVAL,
        stories=(
            builders.story(1),
            builders.story(2, status="blocked", validation_status="pending"),
        ),
    )
    out = run(builtin.stories_complete, builders.gate_context(blocked))
    assert not out["passed"]
    assert out["score"] == 50
    assert out["issues"] == ["SD-UNIT-001:US-002 is not completed and validated"]


# --- PLAN-TO-LEAD and LEAD-FINAL-APPROVAL ---------------------------------------------------


def test_retrospective_gate_scores_the_latest_quality() -> None:
    out = run(builtin.retrospective_exists, ctx_of())
    assert not out["passed"]
    assert out["issues"] == ["no retrospective recorded"]

    retros = (builders.retrospective(90, minutes=1), builders.retrospective(40, minutes=2))
    out = run(builtin.retrospective_exists, ctx_of(retrospectives=retros))
    assert out["passed"]
    assert out["score"] == 40


def test_stories_complete_requires_completed_and_validated() -> None:
    assert run(builtin.stories_complete, ctx_of())["score"] == 100
    assert run(builtin.stories_complete, ctx_of(stories=()))["issues"] == ["no user stories"]

    stories = (
        builders.story(1),
        builders.story(2, status="in_progress"),
        builders.story(3, validation_status="pending"),
        builders.story(4),
    )
    out = run(builtin.stories_complete, ctx_of(stories=stories))
    assert not out["passed"]
    assert out["score"] == 50
    assert out["issues"] == [
        "SD-UNIT-001:US-002 is not completed and validated",
        "SD-UNIT-001:US-003 is not completed and validated",
    ]


def test_full_exec_to_plan_gate_set_for_an_infrastructure_sd_skips_testing() -> None:
    snap = builders.snapshot(
        HandoffType.EXEC_TO_PLAN,
        sd_type="infrastructure",
        handoffs=(builders.handoff(HandoffType.PLAN_TO_EXEC),),
    )
    gates = builtin.default_registry().gates(HandoffType.EXEC_TO_PLAN)
    evaluation = evaluate_gates(gates, builders.gate_context(snap))

    assert evaluation.passed
    assert evaluation.normalized_score == 100
    assert [g.status for g in evaluation.gates] == [
        GateStatus.PASSED,
        GateStatus.PASSED,
        GateStatus.SKIPPED,
    ]
