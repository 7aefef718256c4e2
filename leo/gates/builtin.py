"""LEO's built-in gates per handoff, over the snapshot and this attempt's sub-agent results."""

from __future__ import annotations

from typing import Any

from leo.domain.handoffs import HandoffType
from leo.domain.verdicts import Verdict
from leo.gates.core import Gate, GateContext, GateRegistry
from leo.gates.policy import retrospective_min_quality

TESTING_OK = (Verdict.PASS, Verdict.CONDITIONAL_PASS)


def _result(
    passed: bool, score: float, issues: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    return {"passed": passed, "score": score, "max_score": 100, "issues": issues or [], **extra}


def prerequisite(previous: HandoffType) -> Gate:
    def check(ctx: GateContext) -> dict[str, Any]:
        if ctx.snapshot.accepted(previous):
            return _result(True, 100)
        return _result(
            False,
            0,
            [
                f"ERR_CHAIN_INCOMPLETE: no accepted {previous.value} handoff for {ctx.snapshot.sd.sd_key}"
            ],
        )

    return Gate(
        "PREREQUISITE_HANDOFF_CHECK", check, description=f"an accepted {previous.value} exists"
    )


def sub_agent_orchestration(ctx: GateContext) -> dict[str, Any]:
    agg = ctx.orchestration
    if agg is None or agg.total_agents == 0:
        return _result(True, 100)
    if agg.can_proceed:
        return _result(True, 100, warnings=[agg.message] if agg.verdict is not Verdict.PASS else [])
    return _result(False, 0, [f"sub-agent orchestration {agg.verdict.value}: {agg.message}"])


def transition_readiness(ctx: GateContext) -> dict[str, Any]:
    sd = ctx.snapshot.sd
    issues = []
    if not sd.title.strip() or not sd.description.strip():
        issues.append("title and description are required")
    score = 100
    warnings = []
    if not sd.success_criteria and not sd.success_metrics:
        score -= 10
        warnings.append("no success criteria or metrics")
    if not sd.scope.strip():
        score -= 10
        warnings.append("no scope")
    if issues:
        return _result(False, 0, issues)
    return _result(True, score, warnings=warnings)


def prd_exists(ctx: GateContext) -> dict[str, Any]:
    if ctx.snapshot.prd is None:
        return _result(False, 0, [f"no PRD for {ctx.snapshot.sd.sd_key}"])
    return _result(True, 100)


def stories_defined(ctx: GateContext) -> dict[str, Any]:
    stories = ctx.snapshot.stories
    if not stories:
        return _result(False, 0, ["no user stories"])
    covered = sum(1 for s in stories if s.acceptance_criteria)
    score = 100 * covered / len(stories)
    missing = [s.story_key for s in stories if not s.acceptance_criteria]
    return _result(not missing, score, [f"{k} has no acceptance criteria" for k in missing])


def deliverables_planning(ctx: GateContext) -> dict[str, Any]:
    prd = ctx.snapshot.prd
    if prd is None or not prd.functional_requirements:
        return _result(False, 50, ["the PRD lists no functional requirements"])
    return _result(True, 100)


def mandatory_testing(ctx: GateContext) -> dict[str, Any]:
    testing = ctx.sub_agent("TESTING")
    if testing is not None and testing.ran:
        if testing.verdict in TESTING_OK:
            return _result(True, 100)
        return _result(
            False, 0, [f"ERR_TESTING_REQUIRED: TESTING verdict is {testing.verdict.value}"]
        )
    # Only TESTING evidence from this handoff's own phase counts (PLAN_VERIFY at EXEC-TO-PLAN):
    # a PLAN_PRD "the PRD lists test scenarios" is no proof that the implementation was tested.
    phase = ctx.snapshot.phase
    recent = [
        e for e in ctx.snapshot.evidence if e.sub_agent_code == "TESTING" and e.phase == phase
    ]
    if recent and max(recent, key=lambda e: e.created_at).verdict in TESTING_OK:
        return _result(True, 100)
    return _result(
        False, 0, [f"ERR_TESTING_REQUIRED: no passing TESTING result recorded in phase {phase}"]
    )


def stories_complete(ctx: GateContext) -> dict[str, Any]:
    stories = ctx.snapshot.stories
    if not stories:
        return _result(False, 0, ["no user stories"])
    done = [s for s in stories if s.status == "completed" and s.validation_status == "validated"]
    score = 100 * len(done) / len(stories)
    missing = [s.story_key for s in stories if s not in done]
    return _result(not missing, score, [f"{k} is not completed and validated" for k in missing])


def retrospective_exists(ctx: GateContext) -> dict[str, Any]:
    retros = ctx.snapshot.retrospectives
    if not retros:
        return _result(False, 0, ["no retrospective recorded"])
    latest = max(retros, key=lambda r: r.created_at)
    return _result(True, latest.quality_score)


def retrospective_quality(ctx: GateContext) -> dict[str, Any]:
    """The latest retrospective's quality score, which must reach the SD type's minimum."""
    result = retrospective_exists(ctx)
    if not result["passed"]:
        return result
    sd_type = ctx.snapshot.sd.sd_type
    minimum = retrospective_min_quality(sd_type)
    if result["score"] < minimum:
        return _result(
            False,
            result["score"],
            [
                f"retrospective quality {result['score']} is below the minimum of {minimum} "
                f"for {sd_type} SDs"
            ],
        )
    return result


def default_registry() -> GateRegistry:
    registry = GateRegistry()
    add = registry.add
    add(HandoffType.LEAD_TO_PLAN, Gate("GATE_SD_TRANSITION_READINESS", transition_readiness))
    add(HandoffType.LEAD_TO_PLAN, Gate("SUB_AGENT_ORCHESTRATION", sub_agent_orchestration))

    add(HandoffType.PLAN_TO_EXEC, prerequisite(HandoffType.LEAD_TO_PLAN))
    add(HandoffType.PLAN_TO_EXEC, Gate("GATE_PRD_EXISTS", prd_exists))
    add(HandoffType.PLAN_TO_EXEC, Gate("GATE_USER_STORIES_DEFINED", stories_defined))
    add(HandoffType.PLAN_TO_EXEC, Gate("SUB_AGENT_ORCHESTRATION", sub_agent_orchestration))
    add(
        HandoffType.PLAN_TO_EXEC,
        Gate("GATE_DELIVERABLES_PLANNING", deliverables_planning, required=False),
    )

    add(HandoffType.EXEC_TO_PLAN, prerequisite(HandoffType.PLAN_TO_EXEC))
    add(HandoffType.EXEC_TO_PLAN, Gate("SUB_AGENT_ORCHESTRATION", sub_agent_orchestration))
    add(HandoffType.EXEC_TO_PLAN, Gate("MANDATORY_TESTING_VALIDATION", mandatory_testing))

    add(HandoffType.PLAN_TO_LEAD, prerequisite(HandoffType.EXEC_TO_PLAN))
    add(HandoffType.PLAN_TO_LEAD, Gate("SUB_AGENT_ORCHESTRATION", sub_agent_orchestration))
    add(HandoffType.PLAN_TO_LEAD, Gate("RETROSPECTIVE_QUALITY_GATE", retrospective_quality))
    add(HandoffType.PLAN_TO_LEAD, Gate("USER_STORY_EXISTENCE_GATE", stories_defined))

    final = HandoffType.LEAD_FINAL_APPROVAL
    add(final, Gate("PLAN_TO_LEAD_HANDOFF_EXISTS", prerequisite(HandoffType.PLAN_TO_LEAD).check))
    add(final, Gate("SUB_AGENT_ORCHESTRATION", sub_agent_orchestration))
    add(final, Gate("USER_STORIES_COMPLETE", stories_complete))
    add(final, Gate("RETROSPECTIVE_EXISTS", retrospective_exists))
    return registry
