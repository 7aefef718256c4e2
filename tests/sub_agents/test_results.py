"""Sub-agent output validation and the aggregation table of docs/leo-domain.md 3.7."""

from __future__ import annotations

from typing import Any

import pytest

from leo.domain.verdicts import (
    AgentOutput,
    Verdict,
    aggregate,
    error_output,
    priority_band,
    validate_agent_output,
)
from tests.support.builders import sub_agent_result

JUSTIFICATION = "The remaining gap is documented and scheduled for the next sprint, owner set."


def good(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "verdict": "PASS",
        "confidence": 90,
        "critical_issues": [],
        "warnings": ["minor"],
        "recommendations": ["keep going"],
        "detailed_analysis": "looked at everything",
    }
    data.update(overrides)
    return data


# --- validate_agent_output ------------------------------------------------------------------


def test_good_output_is_validated() -> None:
    out = validate_agent_output(good())

    assert out.verdict is Verdict.PASS
    assert out.confidence == 90
    assert out.warnings == ["minor"]
    assert out.recommendations == ["keep going"]
    assert out.detailed_analysis == "looked at everything"
    assert out.justification is None
    assert out.conditions is None


def test_minimal_output_and_extra_fields() -> None:
    out = validate_agent_output({"verdict": "WARNING", "confidence": 0, "model": "ignored"})
    assert out.verdict is Verdict.WARNING
    assert out.confidence == 0
    assert out.critical_issues == []


@pytest.mark.parametrize("verdict", list(Verdict))
def test_every_leo_verdict_is_accepted(verdict: Verdict) -> None:
    extra = {"conditions": ["c"], "justification": JUSTIFICATION}
    assert validate_agent_output(good(verdict=verdict.value, **extra)).verdict is verdict


def test_an_agent_output_instance_passes_through() -> None:
    out = AgentOutput(verdict=Verdict.FAIL, confidence=70)
    assert validate_agent_output(out) is out


def assert_error(out: AgentOutput, *fragments: str) -> None:
    assert out.verdict is Verdict.ERROR
    assert out.confidence == 0
    assert len(out.critical_issues) == 1
    for fragment in fragments:
        assert fragment in out.critical_issues[0]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"verdict": "OK"}, "verdict"),
        ({"verdict": "pass"}, "verdict"),
        ({"verdict": None}, "verdict"),
        ({"confidence": 101}, "confidence"),
        ({"confidence": -1}, "confidence"),
        ({"confidence": "90"}, "confidence"),
        ({"confidence": True}, "confidence"),
        ({"confidence": 87.5}, "confidence"),
        ({"confidence": 87.0}, "confidence"),
        ({"confidence": None}, "confidence"),
        ({"critical_issues": [f"issue {i}" for i in range(101)]}, "critical_issues"),
        ({"warnings": [f"w {i}" for i in range(101)]}, "warnings"),
        ({"recommendations": [f"r {i}" for i in range(51)]}, "recommendations"),
        ({"critical_issues": "one string"}, "critical_issues"),
        ({"critical_issues": [1]}, "critical_issues.0"),
        ({"detailed_analysis": "x" * 20_001}, "detailed_analysis"),
    ],
)
def test_malformed_field_becomes_error_naming_the_field(
    overrides: dict[str, Any], field: str
) -> None:
    assert_error(validate_agent_output(good(**overrides)), "failed validation", f"{field}:")


@pytest.mark.parametrize("missing", ["verdict", "confidence"])
def test_missing_required_field_becomes_error(missing: str) -> None:
    data = good()
    del data[missing]
    assert_error(validate_agent_output(data), f"{missing}: Field required")


@pytest.mark.parametrize(
    ("raw", "type_name"),
    [("PASS", "str"), (None, "NoneType"), ([{"verdict": "PASS"}], "list"), (90, "int")],
)
def test_non_object_output_becomes_error(raw: Any, type_name: str) -> None:
    assert_error(validate_agent_output(raw), "must be a JSON object", type_name)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"conditions": [], "justification": JUSTIFICATION},
        {"conditions": ["ship the docs"]},
        {"conditions": ["ship the docs"], "justification": "too short"},
        {"conditions": None, "justification": JUSTIFICATION},
    ],
)
def test_conditional_pass_needs_conditions_and_a_real_justification(
    overrides: dict[str, Any],
) -> None:
    out = validate_agent_output(good(verdict="CONDITIONAL_PASS", **overrides))
    assert_error(out, "CONDITIONAL_PASS", "conditions", "justification")


def test_conditional_pass_with_evidence_is_valid() -> None:
    out = validate_agent_output(
        good(verdict="CONDITIONAL_PASS", conditions=["ship the docs"], justification="x" * 50)
    )
    assert out.verdict is Verdict.CONDITIONAL_PASS
    assert out.conditions == ["ship the docs"]


def test_error_output_truncates_long_messages() -> None:
    out = error_output("x" * 5000)
    assert out.verdict is Verdict.ERROR
    assert len(out.critical_issues[0]) == 2000


# --- priority bands -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "band"),
    [
        (100, "CRITICAL"),
        (90, "CRITICAL"),
        (89, "HIGH"),
        (70, "HIGH"),
        (69, "MEDIUM"),
        (0, "MEDIUM"),
    ],
)
def test_priority_band(priority: int, band: str) -> None:
    assert priority_band(priority) == band
    assert sub_agent_result("X", "PASS", priority=priority).band == band


# --- aggregate (3.7) ------------------------------------------------------------------------


def test_no_agents_pass() -> None:
    agg = aggregate([])
    assert agg.verdict is Verdict.PASS
    assert agg.can_proceed
    assert agg.total_agents == 0
    assert agg.message == "no sub-agents required"


def test_all_pass_is_pass() -> None:
    agg = aggregate(
        [
            sub_agent_result("A", "PASS", confidence=90),
            sub_agent_result("B", "CONDITIONAL_PASS", confidence=81),
        ]
    )
    assert agg.verdict is Verdict.PASS
    assert agg.can_proceed
    assert (agg.total_agents, agg.passed, agg.failed, agg.blocked) == (2, 2, 0, 0)
    assert agg.confidence == 85  # floor of 85.5
    assert agg.message == "all 2 sub-agents passed"


@pytest.mark.parametrize("priority", [70, 85, 90, 100])
def test_fail_from_high_priority_blocks(priority: int) -> None:
    agg = aggregate(
        [sub_agent_result("A", "PASS"), sub_agent_result("HIGH", "FAIL", priority=priority)]
    )
    assert agg.verdict is Verdict.BLOCKED
    assert not agg.can_proceed
    assert agg.failed == 1
    assert "HIGH (FAIL)" in agg.message


@pytest.mark.parametrize("priority", [0, 50, 69])
def test_fail_from_lower_priority_is_conditional_pass(priority: int) -> None:
    agg = aggregate(
        [sub_agent_result("A", "PASS"), sub_agent_result("LOW", "FAIL", priority=priority)]
    )
    assert agg.verdict is Verdict.CONDITIONAL_PASS
    assert agg.can_proceed
    assert agg.message == "lower-priority sub-agents failed: LOW"


def test_error_counts_like_fail() -> None:
    blocked = aggregate([sub_agent_result("SECURITY", "ERROR", priority=90)])
    assert blocked.verdict is Verdict.BLOCKED
    assert not blocked.can_proceed
    assert blocked.failed == 1
    assert "SECURITY (ERROR)" in blocked.message

    lower = aggregate([sub_agent_result("DOCMON", "ERROR", priority=50)])
    assert lower.verdict is Verdict.CONDITIONAL_PASS
    assert lower.can_proceed


def test_any_blocked_verdict_blocks() -> None:
    agg = aggregate(
        [
            sub_agent_result("A", "PASS"),
            sub_agent_result("LOW", "FAIL", priority=10),
            sub_agent_result("B", "BLOCKED", priority=10),
        ]
    )
    assert agg.verdict is Verdict.BLOCKED
    assert not agg.can_proceed
    assert agg.blocked == 1
    assert agg.message == "sub-agents blocked: B"


def test_high_priority_failure_is_reported_before_blocked() -> None:
    agg = aggregate(
        [sub_agent_result("B", "BLOCKED"), sub_agent_result("SECURITY", "FAIL", priority=90)]
    )
    assert agg.verdict is Verdict.BLOCKED
    assert agg.message.startswith("high-priority sub-agents failed")


@pytest.mark.parametrize("verdict", ["WARNING", "MANUAL_REQUIRED", "PENDING"])
def test_a_warning_is_warning_and_can_proceed(verdict: str) -> None:
    agg = aggregate([sub_agent_result("A", "PASS"), sub_agent_result("W", verdict, priority=90)])
    assert agg.verdict is Verdict.WARNING
    assert agg.can_proceed
    assert agg.passed == 1
    assert agg.failed == 0


def test_confidence_is_floor_of_mean() -> None:
    agg = aggregate(
        [
            sub_agent_result("A", "PASS", confidence=100),
            sub_agent_result("B", "PASS", confidence=99),
            sub_agent_result("C", "PASS", confidence=99),
        ]
    )
    assert agg.confidence == 99  # 99.33
    agg = aggregate(
        [sub_agent_result("A", "PASS", confidence=1), sub_agent_result("B", "PASS", confidence=0)]
    )
    assert agg.confidence == 0  # 0.5
