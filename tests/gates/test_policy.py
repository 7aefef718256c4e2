"""SD-type policy: gate thresholds (docs/leo-domain.md 4.4) and should_skip_gate (4.5)."""

from __future__ import annotations

import pytest

from leo.gates.builtin import default_registry
from leo.gates.policy import (
    DEFAULT_GATE_THRESHOLD,
    GATE_THRESHOLDS,
    gate_threshold,
    should_skip_gate,
)


@pytest.mark.parametrize(
    ("sd_type", "threshold"),
    [
        ("feature", 85),
        ("security", 90),
        ("infrastructure", 80),
        ("documentation", 60),
        ("docs", 60),
        ("orchestrator", 70),
        ("process", 70),
        ("qa", 70),
        ("uat", 70),
        ("api", 75),
        ("backend", 75),
        ("enhancement", 75),
        ("bugfix", 85),
        ("refactor", 75),
        ("database", 80),
        ("performance", 80),
        # Types without a profile use the default.
        ("discovery_spike", 85),
        ("implementation", 85),
        ("ux_debt", 85),
        ("something_new", 85),
        ("", 85),
    ],
)
def test_gate_threshold_per_type(sd_type: str, threshold: float) -> None:
    assert gate_threshold(sd_type) == threshold


@pytest.mark.parametrize("spelling", ["Security", "SECURITY", " security ", "sEcUrItY"])
def test_gate_threshold_lookup_ignores_case_and_whitespace(spelling: str) -> None:
    assert gate_threshold(spelling) == 90


def test_default_threshold_is_85() -> None:
    assert DEFAULT_GATE_THRESHOLD == 85
    assert all(key == key.lower() for key in GATE_THRESHOLDS)


def skipped(gate: str, sd_type: str) -> bool:
    return should_skip_gate(gate, sd_type) is not None


@pytest.mark.parametrize(
    ("gate", "sd_type"),
    [
        # infrastructure: TESTING, DESIGN, GITHUB do not apply
        ("MANDATORY_TESTING_VALIDATION", "infrastructure"),
        ("TESTING", "infrastructure"),
        ("GATE1_DESIGN_DATABASE", "infrastructure"),
        ("GATE5_GIT_COMMIT_ENFORCEMENT", "infrastructure"),
        # documentation / docs / process: code validators and stories do not apply
        ("GATE_USER_STORIES_DEFINED", "documentation"),
        ("USER_STORY_EXISTENCE_GATE", "documentation"),
        ("USER_STORIES_COMPLETE", "documentation"),
        ("DATABASE", "documentation"),
        ("GATE5_GIT_COMMIT_ENFORCEMENT", "documentation"),
        ("REGRESSION", "documentation"),
        ("MANDATORY_TESTING_VALIDATION", "docs"),
        ("STORIES", "docs"),
        ("GITHUB", "process"),
        # orchestrator: everything listed, DOCMON included
        ("DOCMON", "orchestrator"),
        ("STORIES", "orchestrator"),
        ("MANDATORY_TESTING_VALIDATION", "orchestrator"),
        # refactor, bugfix, database rows
        ("MANDATORY_TESTING_VALIDATION", "refactor"),
        ("GATE_USER_STORIES_DEFINED", "refactor"),
        ("DESIGN", "bugfix"),
        ("GATE1_DESIGN_DATABASE", "database"),
        # lightweight types skip the planning-detail gates
        ("GATE_DELIVERABLES_PLANNING", "infrastructure"),
        ("GATE_DELIVERABLES_PLANNING", "bugfix"),
        ("GATE_EXPLORATION_AUDIT", "qa"),
        ("GATE_FILE_SCOPE", "discovery_spike"),
        ("GATE_EXECUTION_PLAN", "ux_debt"),
        ("DELIVERABLES_PLANNING", "implementation"),
        # case-insensitive on both sides
        ("mandatory_testing_validation", "Infrastructure"),
    ],
)
def test_gate_is_skipped(gate: str, sd_type: str) -> None:
    decision = should_skip_gate(gate, sd_type)

    assert decision is not None
    assert decision.reason_code == "NON_APPLICABLE_SD_TYPE"
    assert sd_type.strip().lower() in decision.reason


@pytest.mark.parametrize(
    ("gate", "sd_type"),
    [
        # infrastructure still runs DOCMON, stories, database and planning-unrelated gates
        ("DOCMON", "infrastructure"),
        ("GATE_USER_STORIES_DEFINED", "infrastructure"),
        ("DATABASE", "infrastructure"),
        # documentation requires DOCMON
        ("DOCMON", "documentation"),
        # refactor keeps GITHUB and REGRESSION
        ("GATE5_GIT_COMMIT_ENFORCEMENT", "refactor"),
        ("REGRESSION", "refactor"),
        # bugfix keeps TESTING and GITHUB
        ("MANDATORY_TESTING_VALIDATION", "bugfix"),
        ("GITHUB", "bugfix"),
        # database keeps DATABASE
        ("DATABASE", "database"),
        # security keeps its code validators
        ("MANDATORY_TESTING_VALIDATION", "security"),
        # DELIVERABLES_PLANNING is only skipped for lightweight types
        ("GATE_DELIVERABLES_PLANNING", "security"),
        ("GATE_DELIVERABLES_PLANNING", "enhancement"),
        # gates that are no validator of the matrix always run
        ("SUB_AGENT_ORCHESTRATION", "orchestrator"),
        ("PREREQUISITE_HANDOFF_CHECK", "documentation"),
        ("GATE_PRD_EXISTS", "documentation"),
        ("RETROSPECTIVE_EXISTS", "orchestrator"),
    ],
)
def test_gate_runs(gate: str, sd_type: str) -> None:
    assert should_skip_gate(gate, sd_type) is None


@pytest.mark.parametrize("sd_type", ["feature", "something_new", "Feature"])
def test_feature_and_unknown_types_run_every_builtin_gate(sd_type: str) -> None:
    registry = default_registry()
    names = {
        g.name
        for h in (
            "LEAD-TO-PLAN",
            "PLAN-TO-EXEC",
            "EXEC-TO-PLAN",
            "PLAN-TO-LEAD",
            "LEAD-FINAL-APPROVAL",
        )
        for g in registry.gates(h)
    }
    names |= {
        "TESTING",
        "DESIGN",
        "GITHUB",
        "DATABASE",
        "REGRESSION",
        "DOCMON",
        "STORIES",
        "GATE_DELIVERABLES_PLANNING",
        "GATE_FILE_SCOPE",
    }

    assert {n for n in names if skipped(n, sd_type)} == set()


def test_skip_reasons_name_the_validator_and_the_rule() -> None:
    non_applicable = should_skip_gate("MANDATORY_TESTING_VALIDATION", "infrastructure")
    assert non_applicable is not None
    assert non_applicable.reason == "TESTING does not apply to infrastructure SDs"

    lightweight = should_skip_gate("GATE_DELIVERABLES_PLANNING", "bugfix")
    assert lightweight is not None
    assert lightweight.reason == (
        "bugfix is a lightweight SD type; DELIVERABLES_PLANNING is not required"
    )
