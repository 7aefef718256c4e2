"""Results the handoff workflow makes up itself: an agent that did not run, an activity that
failed for good, the message of a rejection, the details the Web UI shows. Workflow code: deterministic, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from leo.domain.handoff_messages import HandoffResult, SubAgentProgress
    from leo.domain.snapshot import SubAgentSpec
    from leo.domain.verdicts import SubAgentResult, Verdict


def not_run(spec: SubAgentSpec, verdict: Verdict, issue: str) -> SubAgentResult:
    return SubAgentResult(
        code=spec.code,
        name=spec.name,
        priority=spec.priority,
        verdict=verdict,
        confidence=0,
        critical_issues=(issue,),
        ran=False,
    )


def activity_failure_result(spec: SubAgentSpec, err: ActivityError) -> SubAgentResult:
    cause = err.cause
    if isinstance(cause, TimeoutError):
        issue = f"{spec.code} timed out ({cause.type.name if cause.type else 'timeout'}) and was cancelled"
    else:
        issue = f"{spec.code} failed: {getattr(cause, 'message', None) or err.message}"
    return not_run(spec, Verdict.ERROR, issue)


def rejection_message(result: HandoffResult) -> str:
    """'GATE_X failed: score 72.5 against threshold 80 (infrastructure); issues: ...;
    LEAD-TO-PLAN rejected for SD-X': the gate, the score and the issues first."""
    score = f"{result.normalized_score:.1f}" if result.normalized_score is not None else "n/a"
    issues = "; ".join(result.issues) or "none recorded"
    return (
        f"{result.failed_gate or 'a gate'} failed: score {score} against threshold "
        f"{result.threshold:g} ({result.sd_type}); issues: {issues}. "
        f"{result.handoff_type.value} rejected for {result.sd_key}"
    )


def result_details(result: HandoffResult) -> str:
    """The Web UI's current details of a finished handoff: outcome, score, agents, gates."""
    score = f"{result.normalized_score:.1f}" if result.normalized_score is not None else "n/a"
    lines = [
        f"**{result.handoff_type.value} {result.outcome}** for {result.sd_key}: "
        f"score {score} / threshold {result.threshold:g} ({result.sd_type})",
        "",
        *[f"- {r.summary()}" for r in result.sub_agents],
        *[f"- gate {g.name}: {g.status.value}" for g in result.gates],
    ]
    return "\n".join(lines)


def progress_rows(
    specs: Mapping[str, SubAgentSpec],
    done: Mapping[str, SubAgentResult],
    running: Mapping[str, Any],
) -> list[SubAgentProgress]:
    """The `progress` query's agent rows: done (or skipped), running, pending."""
    rows = []
    for code in [*[c for c in done if c not in specs], *specs]:
        if code in done:
            r = done[code]
            state = "done" if r.ran else "skipped"
            rows.append(
                SubAgentProgress(
                    code=code, state=state, verdict=r.verdict.value, confidence=r.confidence
                )
            )
        else:
            rows.append(
                SubAgentProgress(code=code, state="running" if code in running else "pending")
            )
    return rows


def progress_details(rows: list[SubAgentProgress]) -> str:
    """The Web UI's panel while agents run: "SECURITY sub-agent: PASS (92)" per agent."""
    return "\n".join(
        f"- {row.code} sub-agent: {row.verdict or row.state}"
        + (f" ({row.confidence})" if row.confidence is not None else "")
        for row in rows
    )
