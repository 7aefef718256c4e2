"""Gate scoring: thresholds on the unrounded score, weights, stops, skips, fail-closed results."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from leo.domain.gates import GateStatus
from leo.domain.handoffs import HandoffType
from leo.gates.core import (
    GATE_SUMMARY_BUDGET_BYTES,
    THRESHOLD_GATE,
    Gate,
    GateContext,
    GateRegistry,
    bounded_gate_summary,
    evaluate_gates,
    validate_gate_result,
)
from tests.support import builders


def result(
    score: float, max_score: float = 100, passed: bool = True, **extra: Any
) -> dict[str, Any]:
    return {"passed": passed, "score": score, "max_score": max_score, "issues": [], **extra}


def scoring(name: str, score: float, **kw: Any) -> Gate:
    """A gate that passes with `score` out of 100."""
    return Gate(name, lambda ctx: result(score), **kw)


def returning(name: str, raw: Any, **kw: Any) -> Gate:
    return Gate(name, lambda ctx: raw, **kw)


def ctx_for(sd_type: str) -> GateContext:
    return builders.gate_context(sd_type=sd_type)


# --- thresholds on the unrounded score ------------------------------------------------------


def test_security_at_89_9_is_blocked_by_the_threshold() -> None:
    evaluation = evaluate_gates([scoring("G", 89.9)], ctx_for("security"))

    assert not evaluation.passed
    assert evaluation.failed_gate == THRESHOLD_GATE
    assert evaluation.threshold == 90
    assert evaluation.sd_type == "security"
    assert evaluation.normalized_score == pytest.approx(89.9)
    assert len(evaluation.issues) == 1
    assert "90%" in evaluation.issues[0]
    assert "security" in evaluation.issues[0]
    assert "89.9" in evaluation.issues[0]
    # The gate itself passed; only the threshold blocked.
    assert evaluation.gates[0].status is GateStatus.PASSED


def test_security_at_exactly_90_is_accepted() -> None:
    evaluation = evaluate_gates([scoring("G", 90)], ctx_for("security"))

    assert evaluation.passed
    assert evaluation.failed_gate is None
    assert evaluation.normalized_score == 90
    assert evaluation.issues == ()


def test_a_score_just_below_the_threshold_is_not_rounded_up() -> None:
    # LEO rounded 89.5 to 90 and let it through.
    evaluation = evaluate_gates([scoring("G", 89.5)], ctx_for("security"))
    assert not evaluation.passed
    assert evaluation.failed_gate == THRESHOLD_GATE


@pytest.mark.parametrize(
    ("sd_type", "score", "passed"),
    [
        ("infrastructure", 80, True),
        ("infrastructure", 79.99, False),
        ("documentation", 60, True),
        ("documentation", 59.99, False),
        ("docs", 60, True),
        ("orchestrator", 70, True),
        ("orchestrator", 69.99, False),
        ("feature", 85, True),
        ("feature", 84.99, False),
        ("discovery_spike", 85, True),
        ("discovery_spike", 84.99, False),
        ("no_such_type", 85, True),
        ("no_such_type", 84.99, False),
    ],
)
def test_threshold_per_sd_type(sd_type: str, score: float, passed: bool) -> None:
    evaluation = evaluate_gates([scoring("G", score)], ctx_for(sd_type))

    assert evaluation.passed is passed
    assert evaluation.failed_gate == (None if passed else THRESHOLD_GATE)


def test_sd_type_lookup_is_case_insensitive() -> None:
    evaluation = evaluate_gates([scoring("G", 89.9)], ctx_for("Security"))

    assert evaluation.threshold == 90
    assert not evaluation.passed
    assert evaluation.failed_gate == THRESHOLD_GATE
    assert evaluation.sd_type == "Security"


# --- weighted average -----------------------------------------------------------------------


def test_leo_scenario_ten_gates_and_an_advisory_zero_pass_a_feature() -> None:
    gates = [scoring(f"G{i}", 100) for i in range(10)]
    gates.append(
        Gate("ADVISORY", lambda ctx: result(0, passed=False, issues=["advisory"]), required=False)
    )

    evaluation = evaluate_gates(gates, ctx_for("feature"))

    assert evaluation.passed
    assert evaluation.normalized_score == pytest.approx(1000 / 11)
    assert evaluation.gates[-1].status is GateStatus.FAILED
    assert evaluation.gates[-1].issues == ("advisory",)
    assert len(evaluation.gates) == 11


def test_leo_scenario_four_gates_and_an_advisory_zero_block_a_feature() -> None:
    gates = [scoring(f"G{i}", 100) for i in range(4)]
    gates.append(Gate("ADVISORY", lambda ctx: result(0, passed=False), required=False))

    evaluation = evaluate_gates(gates, ctx_for("feature"))

    assert not evaluation.passed
    assert evaluation.normalized_score == 80
    assert evaluation.failed_gate == THRESHOLD_GATE


def test_weights_scale_each_gate_percentage() -> None:
    # (100 * 3 + 50 * 1) / 4 = 87.5
    gates = [scoring("HEAVY", 100, weight=3), scoring("LIGHT", 50, weight=1)]
    evaluation = evaluate_gates(gates, ctx_for("feature"))
    assert evaluation.normalized_score == 87.5
    assert evaluation.passed

    # (100 * 1 + 50 * 3) / 4 = 62.5
    gates = [scoring("LIGHT", 100, weight=1), scoring("HEAVY", 50, weight=3)]
    evaluation = evaluate_gates(gates, ctx_for("feature"))
    assert evaluation.normalized_score == 62.5
    assert not evaluation.passed


def test_percent_uses_each_gates_own_max_score() -> None:
    gates = [
        Gate("OUT_OF_10", lambda ctx: result(9, max_score=10)),
        Gate("OUT_OF_1000", lambda ctx: result(800, max_score=1000)),
    ]
    evaluation = evaluate_gates(gates, ctx_for("feature"))

    assert [g.percent for g in evaluation.gates] == [90, 80]
    assert evaluation.normalized_score == 85
    assert evaluation.passed


def test_comparison_is_exact_not_float_accumulated() -> None:
    # 0.1 weights summed as floats drift; the threshold check must not.
    gates = [scoring(f"G{i}", 90, weight=0.1) for i in range(10)]
    evaluation = evaluate_gates(gates, ctx_for("security"))
    assert evaluation.passed
    assert evaluation.normalized_score == 90


def test_ten_gates_of_weight_0_1_reaching_exactly_80_pass_an_infrastructure_sd() -> None:
    # Two built-in-style gates (weight 1) at 100 and ten project gates of weight 0.1 at 40:
    # (2 * 100 + 10 * 0.1 * 40) / (2 + 10 * 0.1) is exactly 80. With the binary value of 0.1
    # it came out a hair below 80 and was rejected as "requires 80%, got 80%".
    gates = [scoring("BUILTIN_1", 100), scoring("BUILTIN_2", 100)]
    gates += [scoring(f"PROJECT_{i}", 40, weight=0.1) for i in range(10)]

    evaluation = evaluate_gates(gates, ctx_for("infrastructure"))

    assert evaluation.passed, evaluation.issues
    assert evaluation.normalized_score == 80
    assert evaluation.failed_gate is None


def test_threshold_message_states_the_exact_score() -> None:
    # 79.9 is shown as 79.9, not rounded to "80" by a 4-digit format.
    evaluation = evaluate_gates([scoring("G", 79.9)], ctx_for("infrastructure"))
    assert evaluation.issues == (
        "SD type 'infrastructure' requires a gate score of at least 80%, got 79.9% "
        "(weighted average over 1 scored gates)",
    )
    # A score that is no terminating decimal is shown as its exact fraction.
    thirds = [scoring("A", 100), scoring("B", 100), scoring("C", 50)]
    evaluation = evaluate_gates(thirds, ctx_for("feature"))
    assert evaluation.issues == (
        "SD type 'feature' requires a gate score of at least 85%, got 250/3 (83.333333)% "
        "(weighted average over 3 scored gates)",
    )


def test_bounded_gate_summary_keeps_the_verdict_and_cuts_messages() -> None:
    noisy = [f"issue {n}: " + "y" * 200 for n in range(1000)]
    gates = [returning("NOISY", result(0, passed=False, issues=noisy)), scoring("OK", 100)]
    evaluation = evaluate_gates(gates, ctx_for("feature"))
    summary = evaluation.summary("PASS")
    assert len(json.dumps(summary.model_dump(mode="json"))) > GATE_SUMMARY_BUDGET_BYTES

    bounded = bounded_gate_summary(summary)

    assert len(json.dumps(bounded.model_dump(mode="json"))) <= GATE_SUMMARY_BUDGET_BYTES
    assert bounded.truncated is True
    assert (bounded.passed, bounded.failed_gate, bounded.normalized_score) == (
        summary.passed,
        summary.failed_gate,
        summary.normalized_score,
    )
    [noisy_gate] = bounded.gate_results
    assert noisy_gate["status"] == "FAILED" and len(noisy_gate["issues"]) == 11
    assert noisy_gate["issues"][-1] == "... and 990 more"
    small = evaluate_gates([scoring("OK", 100)], ctx_for("feature")).summary()
    assert bounded_gate_summary(small) == small and small.truncated is None


# --- required failures stop evaluation, advisory failures only lower the score --------------


def test_failed_required_gate_stops_evaluation_and_is_the_failed_gate() -> None:
    calls: list[str] = []

    def recording(name: str, score: float) -> Gate:
        def check(ctx: GateContext) -> dict[str, Any]:
            calls.append(name)
            return result(score)

        return Gate(name, check)

    def failing(ctx: GateContext) -> dict[str, Any]:
        calls.append("FAILING")
        return result(0, passed=False, issues=["nope"])

    gates = [recording("FIRST", 100), Gate("FAILING", failing), recording("LATER", 100)]
    evaluation = evaluate_gates(gates, ctx_for("feature"))

    assert calls == ["FIRST", "FAILING"]
    assert not evaluation.passed
    # The gate failure is reported, not the (also violated) threshold.
    assert evaluation.failed_gate == "FAILING"
    assert evaluation.issues == ("nope",)
    assert [g.name for g in evaluation.gates] == ["FIRST", "FAILING"]
    assert evaluation.normalized_score == 50


def test_non_required_failure_only_lowers_the_score() -> None:
    calls: list[str] = []

    def later(ctx: GateContext) -> dict[str, Any]:
        calls.append("LATER")
        return result(100)

    gates = [
        scoring("FIRST", 100),
        Gate("ADVISORY", lambda ctx: result(70, passed=False, issues=["meh"]), required=False),
        Gate("LATER", later),
    ]
    evaluation = evaluate_gates(gates, ctx_for("feature"))

    assert calls == ["LATER"]
    assert evaluation.passed
    assert evaluation.failed_gate is None
    assert evaluation.normalized_score == 90
    assert [g.status for g in evaluation.gates] == [
        GateStatus.PASSED,
        GateStatus.FAILED,
        GateStatus.PASSED,
    ]


def test_passed_flag_decides_failure_not_the_score() -> None:
    # A required gate that says passed=False fails even at a full score...
    evaluation = evaluate_gates(
        [Gate("G", lambda ctx: result(100, passed=False, issues=["x"]))], ctx_for("feature")
    )
    assert not evaluation.passed
    assert evaluation.failed_gate == "G"
    # ...and one that says passed=True with a low score only drags the average.
    evaluation = evaluate_gates([scoring("G", 10)], ctx_for("documentation"))
    assert evaluation.failed_gate == THRESHOLD_GATE


# --- empty and skipped ----------------------------------------------------------------------


def test_empty_gate_set_passes_without_a_score() -> None:
    evaluation = evaluate_gates([], ctx_for("security"))

    assert evaluation.passed
    assert evaluation.normalized_score is None
    assert evaluation.failed_gate is None
    assert evaluation.gates == ()
    assert evaluation.threshold == 90


def test_skipped_gate_is_reported_with_reason_and_excluded_from_the_average() -> None:
    calls: list[str] = []

    def testing(ctx: GateContext) -> dict[str, Any]:
        calls.append("testing")
        return result(0, passed=False)

    gates = [scoring("G", 80), Gate("MANDATORY_TESTING_VALIDATION", testing)]
    evaluation = evaluate_gates(gates, ctx_for("infrastructure"))

    assert calls == []
    assert evaluation.passed
    assert evaluation.normalized_score == 80
    skipped = evaluation.gates[1]
    assert skipped.name == "MANDATORY_TESTING_VALIDATION"
    assert skipped.status is GateStatus.SKIPPED
    assert skipped.score is None
    assert skipped.percent is None
    assert skipped.skip_reason is not None
    assert skipped.skip_reason.startswith("NON_APPLICABLE_SD_TYPE")
    assert "TESTING" in skipped.skip_reason
    assert "infrastructure" in skipped.skip_reason


def test_the_same_gate_runs_for_a_feature() -> None:
    gates = [scoring("G", 100), Gate("MANDATORY_TESTING_VALIDATION", lambda ctx: result(50))]
    evaluation = evaluate_gates(gates, ctx_for("feature"))

    assert evaluation.gates[1].status is GateStatus.PASSED
    assert evaluation.normalized_score == 75


def test_all_gates_skipped_passes_without_a_score() -> None:
    gates = [Gate("MANDATORY_TESTING_VALIDATION", lambda ctx: result(0, passed=False))]
    evaluation = evaluate_gates(gates, ctx_for("infrastructure"))

    assert evaluation.passed
    assert evaluation.normalized_score is None
    assert [g.status for g in evaluation.gates] == [GateStatus.SKIPPED]


# --- malformed results fail closed ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "NoneType"),
        ("passed", "str"),
        ([True, 100, 100, []], "list"),
        (95, "int"),
        ({"passed": True, "score": 100, "max_score": 100}, "issues"),
        ({"passed": True, "score": "90", "max_score": 100, "issues": []}, "score"),
        ({"passed": 1, "score": 90, "max_score": 100, "issues": []}, "passed"),
        ({"passed": "true", "score": 90, "max_score": 100, "issues": []}, "passed"),
        ({"score": 90, "max_score": 100, "issues": []}, "passed"),
        ({"passed": True, "max_score": 100, "issues": []}, "score"),
        ({"passed": True, "score": 90, "issues": []}, "max_score"),
        ({"passed": True, "score": 90, "max_score": 0, "issues": []}, "max_score"),
        ({"passed": True, "score": 0, "max_score": -10, "issues": []}, "max_score"),
        ({"passed": True, "score": -1, "max_score": 100, "issues": []}, "score"),
        ({"passed": True, "score": 101, "max_score": 100, "issues": []}, "exceeds max_score"),
        ({"passed": True, "score": math.nan, "max_score": 100, "issues": []}, "finite"),
        ({"passed": True, "score": math.inf, "max_score": 100, "issues": []}, "finite"),
        ({"passed": True, "score": 90, "max_score": math.inf, "issues": []}, "finite"),
        ({"passed": True, "score": True, "max_score": 100, "issues": []}, "boolean"),
        ({"passed": True, "score": 90, "max_score": 100, "issues": "bad"}, "issues"),
        ({"passed": True, "score": 90, "max_score": 100, "issues": [1]}, "issues"),
        ({"passed": True, "score": 90, "max_score": 100, "issues": None}, "issues"),
        (
            {"passed": True, "score": 90, "max_score": 100, "issues": [], "warnings": "w"},
            "warnings",
        ),
        ({"passed": True, "score": 10**400, "max_score": 10**401, "issues": []}, "finite"),
    ],
)
def test_malformed_result_fails_closed_with_an_issue_naming_the_problem(
    raw: Any, expected: str
) -> None:
    calls: list[str] = []

    def later(ctx: GateContext) -> dict[str, Any]:
        calls.append("later")
        return result(100)

    # Even a passing score elsewhere and a lenient threshold do not rescue it.
    gates = [returning("BROKEN", raw), Gate("LATER", later)]
    evaluation = evaluate_gates(gates, ctx_for("documentation"))

    assert not evaluation.passed
    assert evaluation.failed_gate == "BROKEN"
    assert calls == []
    outcome = evaluation.gates[0]
    assert outcome.status is GateStatus.FAILED
    assert outcome.score == 0
    assert outcome.max_score == 100
    assert len(outcome.issues) == 1
    assert outcome.issues[0].startswith("malformed gate result:")
    assert expected in outcome.issues[0]
    assert evaluation.issues == outcome.issues


def test_malformed_non_required_gate_counts_as_zero() -> None:
    gates = [
        scoring("A", 100),
        scoring("B", 100),
        scoring("C", 100),
        returning("BROKEN", {"passed": True}, required=False),
    ]
    evaluation = evaluate_gates(gates, ctx_for("documentation"))

    assert evaluation.passed
    assert evaluation.normalized_score == 75
    assert evaluation.gates[3].status is GateStatus.FAILED
    assert "issues" in evaluation.gates[3].issues[0]


def test_gate_that_raises_fails_closed() -> None:
    def boom(ctx: GateContext) -> dict[str, Any]:
        raise KeyError("prd")

    evaluation = evaluate_gates([Gate("BOOM", boom)], ctx_for("documentation"))

    assert not evaluation.passed
    assert evaluation.failed_gate == "BOOM"
    assert evaluation.gates[0].status is GateStatus.FAILED
    assert evaluation.gates[0].score == 0
    assert evaluation.issues == ("gate raised KeyError: 'prd'",)


def test_max_score_camel_case_is_accepted() -> None:
    gates = [returning("CAMEL", {"passed": True, "score": 45, "maxScore": 50, "issues": []})]
    evaluation = evaluate_gates(gates, ctx_for("feature"))

    assert evaluation.passed
    assert evaluation.gates[0].max_score == 50
    assert evaluation.normalized_score == 90


def test_valid_result_fields_are_reported() -> None:
    raw = {
        "passed": True,
        "score": 95,
        "max_score": 100,
        "issues": [],
        "warnings": ["minor"],
        "details": {"ignored": True},
    }
    evaluation = evaluate_gates([returning("G", raw, weight=2)], ctx_for("feature"))

    outcome = evaluation.gates[0]
    assert outcome.status is GateStatus.PASSED
    assert outcome.score == 95
    assert outcome.percent == 95
    assert outcome.warnings == ("minor",)
    assert outcome.weight == 2
    assert outcome.required


def test_validate_gate_result_accepts_ints_and_never_fixes() -> None:
    parsed, problem = validate_gate_result(
        {"passed": False, "score": 0, "max_score": 1, "issues": []}
    )
    assert problem is None
    assert parsed is not None
    assert parsed.score == 0.0
    assert parsed.max_score == 1.0

    parsed, problem = validate_gate_result({"pass": True, "score": 1, "max_score": 1, "issues": []})
    assert parsed is None
    assert problem is not None
    assert "passed" in problem


def test_percent_does_not_overflow_for_huge_but_finite_scores() -> None:
    raw = {"passed": True, "score": 1e307, "max_score": 1e308, "issues": []}
    evaluation = evaluate_gates([returning("HUGE", raw)], ctx_for("feature"))

    assert evaluation.gates[0].percent == pytest.approx(10)
    assert evaluation.normalized_score == pytest.approx(10)
    assert evaluation.failed_gate == THRESHOLD_GATE


# --- gates see immutable copies -------------------------------------------------------------


def test_gate_mutating_its_context_does_not_affect_the_next_gate_or_the_caller() -> None:
    seen: list[dict[str, Any]] = []

    def tamper(ctx: GateContext) -> dict[str, Any]:
        ctx.snapshot.sd.metadata["x"] = 1
        ctx.snapshot.sd.success_criteria.append("sneaky")
        assert ctx.snapshot.prd is not None
        ctx.snapshot.prd.metadata["y"] = 2
        return result(100)

    def observe(ctx: GateContext) -> dict[str, Any]:
        assert ctx.snapshot.prd is not None
        seen.append(
            {
                "sd": dict(ctx.snapshot.sd.metadata),
                "criteria": list(ctx.snapshot.sd.success_criteria),
                "prd": dict(ctx.snapshot.prd.metadata),
            }
        )
        return result(100)

    ctx = builders.gate_context(builders.snapshot(metadata={"original": True}))
    evaluation = evaluate_gates([Gate("TAMPER", tamper), Gate("OBSERVE", observe)], ctx)

    assert evaluation.passed
    assert seen == [{"sd": {"original": True}, "criteria": ["it works"], "prd": {}}]
    assert ctx.snapshot.sd.metadata == {"original": True}
    assert ctx.snapshot.sd.success_criteria == ["it works"]


def test_gate_context_is_frozen() -> None:
    def reassign(ctx: GateContext) -> dict[str, Any]:
        ctx.snapshot.sd.sd_type = "documentation"  # type: ignore[misc]  # frozen: must raise
        return result(100)

    evaluation = evaluate_gates([Gate("REASSIGN", reassign)], ctx_for("security"))

    assert evaluation.failed_gate == "REASSIGN"
    assert "ValidationError" in evaluation.issues[0]
    assert evaluation.threshold == 90


# --- registry -------------------------------------------------------------------------------


def noop(ctx: GateContext) -> dict[str, Any]:
    return result(100)


def test_registry_keeps_gates_per_handoff_in_order() -> None:
    registry = GateRegistry()
    registry.add(HandoffType.EXEC_TO_PLAN, Gate("A", noop))
    registry.add("EXEC-TO-PLAN", Gate("B", noop))
    registry.add(HandoffType.PLAN_TO_LEAD, Gate("A", noop))

    assert [g.name for g in registry.gates("EXEC-TO-PLAN")] == ["A", "B"]
    assert [g.name for g in registry.gates(HandoffType.PLAN_TO_LEAD)] == ["A"]
    assert registry.gates(HandoffType.LEAD_TO_PLAN) == ()


def test_registry_refuses_duplicate_names_per_handoff() -> None:
    registry = GateRegistry()
    registry.add(HandoffType.EXEC_TO_PLAN, Gate("A", noop))

    with pytest.raises(ValueError, match="already has a gate named A"):
        registry.add(HandoffType.EXEC_TO_PLAN, Gate("A", noop, required=False))
    assert len(registry.gates(HandoffType.EXEC_TO_PLAN)) == 1


@pytest.mark.parametrize("weight", [0, -1, -0.5, math.nan, math.inf])
def test_registry_refuses_non_positive_or_non_finite_weights(weight: float) -> None:
    registry = GateRegistry()
    with pytest.raises(ValueError, match="weight must be a positive number"):
        registry.add(HandoffType.EXEC_TO_PLAN, Gate("A", noop, weight=weight))
    assert registry.gates(HandoffType.EXEC_TO_PLAN) == ()


def test_registry_refuses_unknown_handoff_types() -> None:
    registry = GateRegistry()
    with pytest.raises(ValueError, match="EXEC-TO-NOWHERE"):
        registry.add("EXEC-TO-NOWHERE", Gate("A", noop))
