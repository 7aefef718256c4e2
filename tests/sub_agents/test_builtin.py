"""Every branch of every built-in sub-agent rule (docs/sub-agents.md documents them)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from leo.domain.handoffs import HandoffType
from leo.domain.snapshot import HandoffSnapshot
from leo.domain.verdicts import AgentOutput, Verdict, validate_agent_output
from leo.sub_agents import builtin
from tests.support import builders

SEED = Path(__file__).resolve().parents[2] / "db" / "migrations" / "0002_seed_sub_agents.sql"


def run(rule: builtin.BuiltinRule, snap: HandoffSnapshot) -> AgentOutput:
    out = rule(snap)
    # What a rule produces must survive the same validation an external agent's output gets.
    revalidated = validate_agent_output(out.model_dump(mode="json"))
    assert revalidated == out
    assert out.verdict is not Verdict.ERROR
    if out.verdict is Verdict.FAIL:
        assert out.critical_issues, "a FAIL names what is wrong"
    if out.verdict is Verdict.WARNING:
        assert out.warnings, "a WARNING says what to look at"
    return out


def snap(**kw: Any) -> HandoffSnapshot:
    return builders.snapshot(**kw)


def with_sd(**sd_fields: Any) -> HandoffSnapshot:
    return builders.snapshot(sd=builders.sd(**sd_fields))


def test_registry_holds_the_documented_rules() -> None:
    assert set(builtin.BUILTIN_RULES) == {
        "VALIDATION",
        "RISK",
        "STORIES",
        "DATABASE",
        "TESTING",
        "SECURITY",
        "GITHUB",
        "DOCMON",
        "RETRO",
    }


def test_every_seeded_builtin_agent_names_an_existing_rule() -> None:
    refs = re.findall(r"'builtin', '\"([A-Z]+)\"'", SEED.read_text())
    assert sorted(refs) == sorted(builtin.BUILTIN_RULES)


# --- VALIDATION -----------------------------------------------------------------------------


def test_validation_passes_a_complete_directive() -> None:
    out = run(builtin.validation, snap())
    assert out.verdict is Verdict.PASS
    assert out.confidence == 95


def test_validation_accepts_metrics_instead_of_criteria() -> None:
    out = run(builtin.validation, with_sd(success_criteria=[], success_metrics=[{"m": 1}]))
    assert out.verdict is Verdict.PASS


@pytest.mark.parametrize(
    ("fields", "missing"),
    [
        ({"title": "   "}, ["title"]),
        ({"description": ""}, ["description"]),
        ({"scope": "\n"}, ["scope"]),
        ({"success_criteria": [], "success_metrics": []}, ["success_criteria or success_metrics"]),
        (
            {"description": "", "scope": "", "success_criteria": []},
            ["description", "scope", "success_criteria or success_metrics"],
        ),
    ],
)
def test_validation_fails_naming_each_missing_part(
    fields: dict[str, Any], missing: list[str]
) -> None:
    out = run(builtin.validation, with_sd(**fields))
    assert out.verdict is Verdict.FAIL
    assert out.confidence == 95
    assert out.critical_issues == [f"SD SD-UNIT-001 has no {name}" for name in missing]


# --- RISK -----------------------------------------------------------------------------------


@pytest.mark.parametrize("metadata", [{}, {"risks": []}, {"risks": None}, {"risks": {}}])
def test_risk_warns_when_nothing_is_recorded(metadata: dict[str, Any]) -> None:
    out = run(builtin.risk, snap(metadata=metadata))
    assert out.verdict is Verdict.WARNING
    assert out.confidence == 60
    assert out.warnings == ["no risks recorded; add metadata.risks with mitigations"]


@pytest.mark.parametrize("risks", ["a risk", {"risk": "x", "mitigation": "y"}, 3])
def test_risk_fails_when_risks_is_not_a_list(risks: Any) -> None:
    out = run(builtin.risk, snap(metadata={"risks": risks}))
    assert out.verdict is Verdict.FAIL
    assert out.confidence == 90
    assert out.critical_issues == ["malformed metadata.risks"]


def test_risk_fails_for_each_risk_without_a_mitigation() -> None:
    risks = [
        {"risk": "data loss", "mitigation": "backups"},
        {"risk": "slow rollout", "mitigation": "   "},
        {"risk": "no owner"},
        "bare string risk",
        {"impact": "high"},
    ]
    out = run(builtin.risk, snap(metadata={"risks": risks}))

    assert out.verdict is Verdict.FAIL
    assert out.confidence == 85
    assert out.detailed_analysis == "4 of 5 risks have no mitigation."
    assert out.critical_issues == [
        "risk without mitigation: slow rollout",
        "risk without mitigation: no owner",
        "risk without mitigation: bare string risk",
        "risk without mitigation: {'impact': 'high'}",
    ]


def test_risk_passes_when_every_risk_is_mitigated() -> None:
    risks = [{"risk": "a", "mitigation": "b"}, {"risk": "c", "mitigation": "d"}]
    out = run(builtin.risk, snap(metadata={"risks": risks}))
    assert out.verdict is Verdict.PASS
    assert out.detailed_analysis == "2 risks recorded, all with mitigations."


# --- STORIES --------------------------------------------------------------------------------


def test_stories_fails_without_stories() -> None:
    out = run(builtin.stories, snap(stories=()))
    assert out.verdict is Verdict.FAIL
    assert out.critical_issues == ["SD SD-UNIT-001 has no user stories"]


def test_stories_fails_for_stories_without_acceptance_criteria() -> None:
    stories = (builders.story(1), builders.story(2, acceptance_criteria=[]))
    out = run(builtin.stories, snap(stories=stories))
    assert out.verdict is Verdict.FAIL
    assert out.critical_issues == ["SD-UNIT-001:US-002 has no acceptance criteria"]
    assert out.detailed_analysis == "1 of 2 stories lack acceptance criteria."


def test_stories_passes_when_all_have_acceptance_criteria() -> None:
    out = run(builtin.stories, snap())
    assert out.verdict is Verdict.PASS
    assert out.confidence == 95


# --- DATABASE -------------------------------------------------------------------------------


@pytest.mark.parametrize("metadata", [{}, {"schema_changes": False}, {"schema_changes": []}])
def test_database_passes_without_declared_schema_changes(metadata: dict[str, Any]) -> None:
    out = run(builtin.database, snap(metadata=metadata, prd=None))
    assert out.verdict is Verdict.PASS
    assert out.confidence == 80


@pytest.mark.parametrize(
    "prd",
    [None, builders.prd(), builders.prd(metadata={"database_migrations": []})],
)
def test_database_fails_when_schema_changes_have_no_planned_migrations(prd: Any) -> None:
    out = run(builtin.database, snap(metadata={"schema_changes": ["add column"]}, prd=prd))
    assert out.verdict is Verdict.FAIL
    assert out.confidence == 90
    assert out.critical_issues == [
        "SD declares schema_changes but the PRD lists no metadata.database_migrations"
    ]


def test_database_passes_when_migrations_are_planned() -> None:
    prd = builders.prd(metadata={"database_migrations": ["0003_add_col.sql", "0004_index.sql"]})
    out = run(builtin.database, snap(metadata={"schema_changes": True}, prd=prd))
    assert out.verdict is Verdict.PASS
    assert out.confidence == 90
    assert out.detailed_analysis == "2 migrations planned for the declared schema changes."


# --- TESTING --------------------------------------------------------------------------------


def planning(**kw: Any) -> HandoffSnapshot:
    return builders.snapshot(HandoffType.PLAN_TO_EXEC, **kw)


@pytest.mark.parametrize("prd", [None, builders.prd(test_scenarios=[])])
def test_testing_at_plan_prd_needs_test_scenarios(prd: Any) -> None:
    out = run(builtin.testing, planning(prd=prd))
    assert out.verdict is Verdict.FAIL
    assert out.critical_issues == ["the PRD defines no test_scenarios"]


def test_testing_at_plan_prd_passes_with_scenarios_whatever_the_stories() -> None:
    stories = (builders.story(1, e2e_test_status="not_created"),)
    out = run(builtin.testing, planning(stories=stories))
    assert out.verdict is Verdict.PASS
    assert out.detailed_analysis == "1 test scenarios defined."


@pytest.mark.parametrize(
    "stories", [(), (builders.story(1, status="blocked", e2e_test_status="failing"),)]
)
def test_testing_at_verify_fails_without_testable_stories(stories: Any) -> None:
    out = run(builtin.testing, snap(stories=stories))
    assert out.verdict is Verdict.FAIL
    assert out.confidence == 80
    assert out.critical_issues == ["no testable stories recorded"]


def test_testing_at_verify_fails_on_failing_and_untested_stories() -> None:
    stories = (
        builders.story(1, e2e_test_status="passing"),
        builders.story(2, e2e_test_status="failing"),
        builders.story(3, e2e_test_status="not_created"),
        builders.story(4, e2e_test_status="created"),
        builders.story(5, status="blocked", e2e_test_status="failing"),
    )
    out = run(builtin.testing, snap(stories=stories))
    assert out.verdict is Verdict.FAIL
    assert out.confidence == 95
    assert out.detailed_analysis == "1 failing and 2 untested of 4 stories."
    assert out.critical_issues == [
        "SD-UNIT-001:US-002: e2e tests failing",
        "SD-UNIT-001:US-003: no passing e2e test recorded",
        "SD-UNIT-001:US-004: no passing e2e test recorded",
    ]


def test_testing_at_verify_fails_on_only_untested() -> None:
    out = run(builtin.testing, snap(stories=(builders.story(1, e2e_test_status="created"),)))
    assert out.verdict is Verdict.FAIL
    assert out.critical_issues == ["SD-UNIT-001:US-001: no passing e2e test recorded"]


def test_testing_at_verify_passes_passing_and_skipped_and_ignores_blocked() -> None:
    stories = (
        builders.story(1, e2e_test_status="passing"),
        builders.story(2, e2e_test_status="skipped"),
        builders.story(3, status="blocked", e2e_test_status="not_created"),
    )
    out = run(builtin.testing, snap(stories=stories))
    assert out.verdict is Verdict.PASS
    assert out.detailed_analysis == "All 2 stories have passing tests."


def test_testing_outside_plan_prd_uses_the_story_evidence() -> None:
    # LEAD_FINAL (e.g. an extra TESTING agent at PLAN-TO-LEAD) checks stories, not scenarios.
    final = builders.snapshot(HandoffType.PLAN_TO_LEAD, prd=None)
    assert run(builtin.testing, final).verdict is Verdict.PASS


# --- SECURITY -------------------------------------------------------------------------------


@pytest.mark.parametrize("findings", ["none", {"severity": "high"}, 5])
def test_security_fails_when_findings_is_not_a_list(findings: Any) -> None:
    out = run(builtin.security, snap(metadata={"security_findings": findings}))
    assert out.verdict is Verdict.FAIL
    assert out.critical_issues == ["malformed security_findings"]


def test_security_fails_on_open_critical_or_high_findings() -> None:
    findings = [
        {"severity": "critical", "title": "SQL injection"},
        {"severity": "HIGH", "status": "open"},
        {"severity": "high", "status": "resolved", "title": "fixed XSS"},
        {"severity": "low", "title": "verbose errors"},
        "not a finding object",
    ]
    out = run(builtin.security, snap(metadata={"security_findings": findings}))
    assert out.verdict is Verdict.FAIL
    assert out.confidence == 95
    assert out.detailed_analysis == "2 open critical/high findings."
    assert out.critical_issues == ["critical: SQL injection", "HIGH: untitled finding"]


def test_security_warns_on_open_lower_findings() -> None:
    findings = [
        {"severity": "medium", "title": "weak header", "status": "in_review"},
        {"severity": "critical", "status": "resolved"},
        {"title": "no severity"},
    ]
    out = run(builtin.security, snap(metadata={"security_findings": findings}))
    assert out.verdict is Verdict.WARNING
    assert out.confidence == 85
    assert out.warnings == ["medium: weak header", "None: no severity"]


@pytest.mark.parametrize(
    ("metadata", "analysis"),
    [
        ({}, "No open security findings (0 resolved)."),
        ({"security_findings": None}, "No open security findings (0 resolved)."),
        (
            {"security_findings": [{"severity": "high", "status": "resolved"}]},
            "No open security findings (1 resolved).",
        ),
    ],
)
def test_security_passes_without_open_findings(metadata: dict[str, Any], analysis: str) -> None:
    out = run(builtin.security, snap(metadata=metadata))
    assert out.verdict is Verdict.PASS
    assert out.confidence == 90
    assert out.detailed_analysis == analysis


# --- GITHUB ---------------------------------------------------------------------------------


@pytest.mark.parametrize("metadata", [{}, {"commits": [], "pull_request": None}, {"commits": None}])
def test_github_fails_without_commits_or_pull_request(metadata: dict[str, Any]) -> None:
    out = run(builtin.github, snap(metadata=metadata))
    assert out.verdict is Verdict.FAIL
    assert out.critical_issues == ["no commits or pull request recorded for the SD"]


@pytest.mark.parametrize(
    ("metadata", "analysis"),
    [
        ({"commits": ["abc", "def"]}, "2 commits recorded."),
        ({"pull_request": "#42"}, "0 commits recorded, PR #42."),
        ({"commits": ["abc"], "pull_request": 7}, "1 commits recorded, PR 7."),
    ],
)
def test_github_passes_with_commits_or_pull_request(
    metadata: dict[str, Any], analysis: str
) -> None:
    out = run(builtin.github, snap(metadata=metadata))
    assert out.verdict is Verdict.PASS
    assert out.confidence == 90
    assert out.detailed_analysis == analysis


# --- DOCMON ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sd_type", ["feature", "documentation", "infrastructure"])
def test_docmon_passes_with_documentation(sd_type: str) -> None:
    out = run(builtin.docmon, snap(sd_type=sd_type, metadata={"documentation": ["README.md"]}))
    assert out.verdict is Verdict.PASS
    assert out.detailed_analysis == "1 documentation artefacts recorded."


@pytest.mark.parametrize("sd_type", ["documentation", "docs"])
def test_docmon_fails_documentation_sds_without_documentation(sd_type: str) -> None:
    out = run(builtin.docmon, snap(sd_type=sd_type, metadata={"documentation": []}))
    assert out.verdict is Verdict.FAIL
    assert out.confidence == 90
    assert out.critical_issues == ["documentation SD without metadata.documentation"]


@pytest.mark.parametrize("sd_type", ["feature", "infrastructure", "orchestrator"])
def test_docmon_warns_other_sds_without_documentation(sd_type: str) -> None:
    out = run(builtin.docmon, snap(sd_type=sd_type))
    assert out.verdict is Verdict.WARNING
    assert out.confidence == 70
    assert out.warnings == ["no metadata.documentation recorded"]


# --- RETRO ----------------------------------------------------------------------------------


def test_retro_fails_without_a_retrospective() -> None:
    out = run(builtin.retro, snap())
    assert out.verdict is Verdict.FAIL
    assert out.critical_issues == ["no retrospective recorded for SD-UNIT-001"]


def test_retro_judges_the_latest_retrospective_by_time_not_order() -> None:
    # The later one (minute 5) is listed first and is poor; the earlier good one doesn't count.
    retros = (builders.retrospective(49, minutes=5), builders.retrospective(95, minutes=1))
    out = run(builtin.retro, snap(retrospectives=retros))
    assert out.verdict is Verdict.FAIL
    assert out.confidence == 90
    assert out.critical_issues == ["retrospective quality 49 < 50"]

    retros = (builders.retrospective(10, minutes=1), builders.retrospective(50, minutes=5))
    out = run(builtin.retro, snap(retrospectives=retros))
    assert out.verdict is Verdict.PASS
    assert out.detailed_analysis == "Retrospective recorded with quality 50."


# --- rules read, never write ----------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(builtin.BUILTIN_RULES))
def test_rules_do_not_change_the_snapshot(code: str) -> None:
    original = builders.snapshot(
        metadata={"risks": [{"risk": "r"}], "security_findings": [{"severity": "low"}]},
        retrospectives=(builders.retrospective(70),),
    )
    before = original.model_dump()
    run(builtin.BUILTIN_RULES[code], original)
    assert original.model_dump() == before


@pytest.mark.parametrize(
    ("rule", "key", "snapshot_kw", "issue"),
    [
        (
            builtin.github,
            "commits",
            {"metadata": {"commits": 5}},
            "malformed metadata.commits: expected a list",
        ),
        (
            builtin.docmon,
            "documentation",
            {"metadata": {"documentation": "README"}},
            "malformed metadata.documentation: expected a list",
        ),
    ],
)
def test_rules_fail_on_metadata_that_is_not_a_list(
    rule: Any, key: str, snapshot_kw: dict[str, Any], issue: str
) -> None:
    out = run(rule, snap(**snapshot_kw))
    assert out.verdict is Verdict.FAIL
    assert out.critical_issues == [issue]


def test_database_fails_on_migrations_that_are_not_a_list() -> None:
    s = builders.snapshot(
        sd=builders.sd(metadata={"schema_changes": True}),
        prd=builders.prd(metadata={"database_migrations": "0001.sql"}),
    )
    out = run(builtin.database, s)
    assert out.verdict is Verdict.FAIL
    assert out.critical_issues == ["malformed PRD metadata.database_migrations: expected a list"]
