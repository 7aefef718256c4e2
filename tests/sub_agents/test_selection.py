"""The mandatory sub-agent matrix by phase and sd_type (docs/leo-domain.md 3.2)."""

from __future__ import annotations

import pytest

from leo.domain.handoffs import HANDOFF_PHASE
from leo.gates.policy import GATE_VALIDATORS, NON_APPLICABLE, should_skip_gate
from leo.sub_agents.selection import MANDATORY, required_sub_agents, select_sub_agents

FEATURE_VERIFY = ("TESTING", "SECURITY", "PERFORMANCE", "UAT")


@pytest.mark.parametrize(
    "sd_type", ["feature", "security", "documentation", "infrastructure", "no_such_type"]
)
def test_lead_pre_approval_needs_validation_and_risk_for_every_type(sd_type: str) -> None:
    assert required_sub_agents("LEAD_PRE_APPROVAL", sd_type) == ("VALIDATION", "RISK")


@pytest.mark.parametrize(
    ("sd_type", "expected"),
    [
        ("feature", ("DATABASE", "STORIES", "TESTING")),
        ("api", ("DATABASE", "STORIES", "TESTING", "API")),
        ("security", ("DATABASE", "STORIES", "SECURITY")),
        # LEO lists STORIES (and DATABASE) here, but the applicability policy says they do not
        # apply to these types, so they are not run (the gates skip them as well).
        ("documentation", ()),
        ("docs", ()),
        ("database", ("DATABASE", "STORIES")),
        ("infrastructure", ("DATABASE", "STORIES")),
        ("refactor", ()),
        # LEO's PLAN_PRD matrix has an explicit default, which unknown types use.
        ("no_such_type", ("DATABASE", "STORIES")),
    ],
)
def test_plan_prd(sd_type: str, expected: tuple[str, ...]) -> None:
    assert required_sub_agents("PLAN_PRD", sd_type) == expected


@pytest.mark.parametrize(
    ("sd_type", "expected"),
    [
        ("feature", FEATURE_VERIFY),
        ("enhancement", ("TESTING", "SECURITY", "PERFORMANCE")),
        ("database", ("DATABASE", "SECURITY", "PERFORMANCE")),
        ("security", ("TESTING", "SECURITY")),
        ("api", ("TESTING", "SECURITY", "PERFORMANCE", "API", "UAT")),
        ("documentation", ("DOCMON",)),
        ("docs", ("DOCMON",)),
        # LEO makes GITHUB mandatory here; the applicability policy says it does not apply.
        ("infrastructure", ("SECURITY",)),
        ("refactor", ("GITHUB", "DOCMON", "REGRESSION")),
        # No PLAN_VERIFY entry: unknown types fall back to the feature list.
        ("no_such_type", FEATURE_VERIFY),
        ("bugfix", FEATURE_VERIFY),
        ("orchestrator", ("SECURITY", "PERFORMANCE", "UAT")),
    ],
)
def test_plan_verify(sd_type: str, expected: tuple[str, ...]) -> None:
    assert required_sub_agents("PLAN_VERIFY", sd_type) == expected


@pytest.mark.parametrize("sd_type", ["feature", "documentation", "no_such_type"])
def test_exec_impl_needs_nothing_and_lead_final_needs_retro(sd_type: str) -> None:
    assert required_sub_agents("EXEC_IMPL", sd_type) == ()
    assert required_sub_agents("LEAD_FINAL", sd_type) == ("RETRO",)


def test_unknown_phase_needs_nothing() -> None:
    assert required_sub_agents("NO_SUCH_PHASE", "feature") == ()
    assert select_sub_agents("NO_SUCH_PHASE", "feature", ["x"]) == ("X",)


def test_docs_is_documentation() -> None:
    for phase in ("LEAD_PRE_APPROVAL", "PLAN_PRD", "PLAN_VERIFY", "EXEC_IMPL", "LEAD_FINAL"):
        assert required_sub_agents(phase, "docs") == required_sub_agents(phase, "documentation")


def test_sd_type_lookup_ignores_case() -> None:
    assert required_sub_agents("PLAN_VERIFY", "Infrastructure") == ("SECURITY",)
    assert required_sub_agents("PLAN_VERIFY", "DOCUMENTATION") == ("DOCMON",)


def test_every_handoff_maps_to_a_phase_of_the_matrix() -> None:
    assert set(HANDOFF_PHASE.values()) == {
        "LEAD_PRE_APPROVAL",
        "PLAN_PRD",
        "PLAN_VERIFY",
        "LEAD_FINAL",
    }


def test_select_appends_extras_after_mandatory_without_duplicates() -> None:
    chosen = select_sub_agents(
        "PLAN_VERIFY", "infrastructure", ["docmon", " Testing ", "SECURITY", "DOCMON", "", "  "]
    )
    # An extra always runs, even one the policy would not make mandatory for the type.
    assert chosen == ("SECURITY", "DOCMON", "TESTING")


def test_extras_never_remove_mandatory_agents() -> None:
    assert select_sub_agents("LEAD_FINAL", "feature", []) == ("RETRO",)
    assert select_sub_agents("LEAD_FINAL", "feature", ["retro"]) == ("RETRO",)
    assert select_sub_agents("PLAN_PRD", "feature") == ("DATABASE", "STORIES", "TESTING")


@pytest.mark.parametrize("sd_type", [*NON_APPLICABLE, "feature", "no_such_type"])
def test_agents_and_gates_follow_one_applicability_policy(sd_type: str) -> None:
    """An agent runs exactly when the gate of the same validator would run for the type."""
    gate_for = {validator: gate for gate, validator in GATE_VALIDATORS.items()}
    for phase in MANDATORY:
        chosen = required_sub_agents(phase, sd_type)
        listed = MANDATORY[phase].get(sd_type, MANDATORY[phase]["*"])
        for code in listed:
            gate = gate_for.get(code, code)
            assert (code in chosen) is (should_skip_gate(gate, sd_type) is None), (phase, code)


def test_github_is_not_mandatory_for_an_infrastructure_sd_at_plan_verify() -> None:
    assert should_skip_gate("GATE5_GIT_COMMIT_ENFORCEMENT", "infrastructure") is not None
    assert "GITHUB" not in select_sub_agents("PLAN_VERIFY", "infrastructure")
    assert "GITHUB" in select_sub_agents("PLAN_VERIFY", "refactor")
