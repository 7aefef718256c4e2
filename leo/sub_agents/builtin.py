"""Built-in sub-agents: documented rules that the evidence recorded in the database answers.

Each rule reads only the handoff snapshot. docs/sub-agents.md lists them with the evidence
each one expects; tests/sub_agents/test_builtin.py pins every branch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from leo.domain.snapshot import HandoffSnapshot
from leo.domain.verdicts import AgentOutput, Verdict

BuiltinRule = Callable[[HandoffSnapshot], AgentOutput]

# Retrospective quality at or above this passes RETRO (LEO's retrospectiveQuality default).
RETRO_MIN_QUALITY = 50
BLOCKING_SEVERITIES = frozenset({"critical", "high"})
DOCUMENTATION_TYPES = frozenset({"documentation", "docs"})


def _listed(value: Any) -> list[Any] | None:
    """A metadata list, [] when absent, None when present but not a list (malformed)."""
    if value is None:
        return []
    return value if isinstance(value, list) else None


def _malformed(key: str) -> AgentOutput:
    return AgentOutput(
        verdict=Verdict.FAIL,
        confidence=90,
        detailed_analysis=f"{key} must be a list.",
        critical_issues=[f"malformed {key}: expected a list"],
    )


def _out(verdict: Verdict, confidence: int, analysis: str, **kw: Any) -> AgentOutput:
    return AgentOutput(verdict=verdict, confidence=confidence, detailed_analysis=analysis, **kw)


def validation(s: HandoffSnapshot) -> AgentOutput:
    """VALIDATION: the SD is well-formed: title, description, scope, and at least one success
    criterion or metric. Anything missing is a FAIL that names it."""
    sd = s.sd
    missing = [
        name
        for name, present in (
            ("title", sd.title.strip()),
            ("description", sd.description.strip()),
            ("scope", sd.scope.strip()),
            ("success_criteria or success_metrics", sd.success_criteria or sd.success_metrics),
        )
        if not present
    ]
    if missing:
        return _out(
            Verdict.FAIL,
            95,
            "The directive is incomplete.",
            critical_issues=[f"SD {sd.sd_key} has no {name}" for name in missing],
        )
    return _out(Verdict.PASS, 95, "Title, description, scope and success criteria are present.")


def risk(s: HandoffSnapshot) -> AgentOutput:
    """RISK: `metadata.risks` lists risks, each with a mitigation. None recorded is a WARNING;
    a risk without a mitigation is a FAIL."""
    risks = s.sd.metadata.get("risks")
    if not risks:
        return _out(
            Verdict.WARNING,
            60,
            "No risk assessment recorded in SD metadata.risks.",
            warnings=["no risks recorded; add metadata.risks with mitigations"],
        )
    if not isinstance(risks, list):
        return _out(
            Verdict.FAIL,
            90,
            "metadata.risks must be a list.",
            critical_issues=["malformed metadata.risks"],
        )
    unmitigated = [
        str(r.get("risk", r)) if isinstance(r, dict) else str(r)
        for r in risks
        if not (isinstance(r, dict) and str(r.get("mitigation", "")).strip())
    ]
    if unmitigated:
        return _out(
            Verdict.FAIL,
            85,
            f"{len(unmitigated)} of {len(risks)} risks have no mitigation.",
            critical_issues=[f"risk without mitigation: {r}" for r in unmitigated],
        )
    return _out(Verdict.PASS, 85, f"{len(risks)} risks recorded, all with mitigations.")


def stories(s: HandoffSnapshot) -> AgentOutput:
    """STORIES: the SD has user stories and every one has acceptance criteria."""
    if not s.stories:
        return _out(
            Verdict.FAIL,
            95,
            "No user stories.",
            critical_issues=[f"SD {s.sd.sd_key} has no user stories"],
        )
    without = [st.story_key for st in s.stories if not st.acceptance_criteria]
    if without:
        return _out(
            Verdict.FAIL,
            95,
            f"{len(without)} of {len(s.stories)} stories lack acceptance criteria.",
            critical_issues=[f"{key} has no acceptance criteria" for key in without],
        )
    return _out(Verdict.PASS, 95, f"{len(s.stories)} stories, all with acceptance criteria.")


def database(s: HandoffSnapshot) -> AgentOutput:
    """DATABASE: when the SD declares `metadata.schema_changes`, the PRD must list its
    migrations in `metadata.database_migrations`. No declared schema change passes."""
    if not s.sd.metadata.get("schema_changes"):
        return _out(Verdict.PASS, 80, "No schema changes declared.")
    migrations = _listed(s.prd.metadata.get("database_migrations") if s.prd else None)
    if migrations is None:
        return _malformed("PRD metadata.database_migrations")
    if not migrations:
        return _out(
            Verdict.FAIL,
            90,
            "Schema changes declared but no migrations planned.",
            critical_issues=[
                "SD declares schema_changes but the PRD lists no metadata.database_migrations"
            ],
        )
    return _out(
        Verdict.PASS, 90, f"{len(migrations)} migrations planned for the declared schema changes."
    )


def testing(s: HandoffSnapshot) -> AgentOutput:
    """TESTING: while planning (PLAN_PRD) the PRD must define test scenarios; at verification
    every story that is not blocked must have a recorded passing (or skipped) e2e test."""
    if s.phase == "PLAN_PRD":
        if s.prd is None or not s.prd.test_scenarios:
            return _out(
                Verdict.FAIL,
                90,
                "No test scenarios.",
                critical_issues=["the PRD defines no test_scenarios"],
            )
        return _out(Verdict.PASS, 90, f"{len(s.prd.test_scenarios)} test scenarios defined.")
    active = [st for st in s.stories if st.status != "blocked"]
    if not active:
        return _out(
            Verdict.FAIL,
            80,
            "No stories to test.",
            critical_issues=["no testable stories recorded"],
        )
    failing = [st.story_key for st in active if st.e2e_test_status == "failing"]
    untested = [
        st.story_key for st in active if st.e2e_test_status not in ("passing", "skipped", "failing")
    ]
    if failing or untested:
        return _out(
            Verdict.FAIL,
            95,
            f"{len(failing)} failing and {len(untested)} untested of {len(active)} stories.",
            critical_issues=[f"{k}: e2e tests failing" for k in failing]
            + [f"{k}: no passing e2e test recorded" for k in untested],
        )
    return _out(Verdict.PASS, 95, f"All {len(active)} stories have passing tests.")


def security(s: HandoffSnapshot) -> AgentOutput:
    """SECURITY: `metadata.security_findings` ({severity, status}); an open critical or high
    finding is a FAIL, open lower ones a WARNING, none open a PASS."""
    findings = s.sd.metadata.get("security_findings") or []
    if not isinstance(findings, list):
        return _out(
            Verdict.FAIL,
            90,
            "metadata.security_findings must be a list.",
            critical_issues=["malformed security_findings"],
        )
    open_findings = [
        f for f in findings if isinstance(f, dict) and f.get("status", "open") != "resolved"
    ]
    blocking = [
        f for f in open_findings if str(f.get("severity", "")).lower() in BLOCKING_SEVERITIES
    ]
    if blocking:
        return _out(
            Verdict.FAIL,
            95,
            f"{len(blocking)} open critical/high findings.",
            critical_issues=[
                f"{f.get('severity')}: {f.get('title', 'untitled finding')}" for f in blocking
            ],
        )
    if open_findings:
        return _out(
            Verdict.WARNING,
            85,
            f"{len(open_findings)} open lower-severity findings.",
            warnings=[
                f"{f.get('severity')}: {f.get('title', 'untitled finding')}" for f in open_findings
            ],
        )
    return _out(Verdict.PASS, 90, f"No open security findings ({len(findings)} resolved).")


def github(s: HandoffSnapshot) -> AgentOutput:
    """GITHUB: the work is in version control: `metadata.commits` or `metadata.pull_request`."""
    commits = _listed(s.sd.metadata.get("commits"))
    if commits is None:
        return _malformed("metadata.commits")
    pull_request = s.sd.metadata.get("pull_request")
    if not commits and not pull_request:
        return _out(
            Verdict.FAIL,
            90,
            "No commits recorded.",
            critical_issues=["no commits or pull request recorded for the SD"],
        )
    return _out(
        Verdict.PASS,
        90,
        f"{len(commits)} commits recorded" + (f", PR {pull_request}" if pull_request else "") + ".",
    )


def docmon(s: HandoffSnapshot) -> AgentOutput:
    """DOCMON: documentation is recorded in `metadata.documentation`; missing documentation
    fails documentation SDs and warns for others."""
    docs = _listed(s.sd.metadata.get("documentation"))
    if docs is None:
        return _malformed("metadata.documentation")
    if docs:
        return _out(Verdict.PASS, 85, f"{len(docs)} documentation artefacts recorded.")
    if s.sd.sd_type in DOCUMENTATION_TYPES:
        return _out(
            Verdict.FAIL,
            90,
            "No documentation recorded.",
            critical_issues=["documentation SD without metadata.documentation"],
        )
    return _out(
        Verdict.WARNING,
        70,
        "No documentation recorded.",
        warnings=["no metadata.documentation recorded"],
    )


def retro(s: HandoffSnapshot) -> AgentOutput:
    """RETRO: a retrospective exists, and the latest scores at least 50."""
    if not s.retrospectives:
        return _out(
            Verdict.FAIL,
            95,
            "No retrospective.",
            critical_issues=[f"no retrospective recorded for {s.sd.sd_key}"],
        )
    latest = max(s.retrospectives, key=lambda r: r.created_at)
    if latest.quality_score < RETRO_MIN_QUALITY:
        return _out(
            Verdict.FAIL,
            90,
            f"Retrospective quality {latest.quality_score} is below {RETRO_MIN_QUALITY}.",
            critical_issues=[f"retrospective quality {latest.quality_score} < {RETRO_MIN_QUALITY}"],
        )
    return _out(Verdict.PASS, 90, f"Retrospective recorded with quality {latest.quality_score}.")


BUILTIN_RULES: dict[str, BuiltinRule] = {
    "VALIDATION": validation,
    "RISK": risk,
    "STORIES": stories,
    "DATABASE": database,
    "TESTING": testing,
    "SECURITY": security,
    "GITHUB": github,
    "DOCMON": docmon,
    "RETRO": retro,
}
