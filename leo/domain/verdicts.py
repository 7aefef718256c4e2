"""Sub-agent results: LEO's verdict set, validation of agent output, and aggregation (3.7)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from leo.domain.budget import AGENT_RESULT_BUDGET_BYTES, json_size, trim_text
from leo.domain.storable import StorableModel, escape_nul


class Verdict(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    BLOCKED = "BLOCKED"
    CONDITIONAL_PASS = "CONDITIONAL_PASS"
    WARNING = "WARNING"
    MANUAL_REQUIRED = "MANUAL_REQUIRED"
    PENDING = "PENDING"
    ERROR = "ERROR"


def known_verdict(value: Any) -> Verdict | None:
    """`value` as a Verdict, or None when it is none of LEO's: a stored record may hold any
    string (a direct SQL call wrote it), and reading it must not fail the workflow for ever."""
    try:
        return Verdict(value)
    except ValueError:
        return None


# A dependant runs only when its dependencies ended in one of these.
SUCCESSFUL_VERDICTS = frozenset({Verdict.PASS, Verdict.CONDITIONAL_PASS, Verdict.WARNING})
# Registry priority at or above which a FAIL/ERROR blocks the handoff (CRITICAL and HIGH bands).
BLOCKING_PRIORITY = 70


def priority_band(priority: int) -> str:
    if priority >= 90:
        return "CRITICAL"
    if priority >= BLOCKING_PRIORITY:
        return "HIGH"
    return "MEDIUM"


class AgentOutput(StorableModel):
    """What an executor must produce. Validated strictly: malformed output is an ERROR, and so
    is a NUL in any field (it would fail the commit on every retry; the ERROR names the
    field)."""

    model_config = ConfigDict(extra="ignore")

    verdict: Verdict
    confidence: int = Field(ge=0, le=100)
    critical_issues: list[str] = Field(default_factory=list, max_length=100)
    warnings: list[str] = Field(default_factory=list, max_length=100)
    recommendations: list[str] = Field(default_factory=list, max_length=50)
    detailed_analysis: str = Field(default="", max_length=20_000)
    justification: str | None = Field(default=None, max_length=5_000)
    conditions: list[str] | None = Field(default=None, max_length=50)

    @field_validator("confidence", mode="before")
    @classmethod
    def _no_bool_or_float_confidence(cls, value: Any) -> Any:
        # pydantic would coerce True -> 1 and 87.0 -> 87; an agent that says that is confused.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("confidence must be an integer from 0 to 100")  # noqa: TRY004 - pydantic wants ValueError
        return value

    @model_validator(mode="after")
    def _conditional_pass_has_evidence(self) -> AgentOutput:
        if self.verdict is Verdict.CONDITIONAL_PASS and (
            not self.conditions or len(self.justification or "") < 50
        ):
            raise ValueError(
                "CONDITIONAL_PASS needs a non-empty conditions list and a justification "
                "of at least 50 characters"
            )
        return self


class SubAgentResult(BaseModel):
    """One agent's outcome in a handoff attempt, as the workflow reports and stores it."""

    model_config = ConfigDict(frozen=True)

    code: str
    name: str
    priority: int
    verdict: Verdict
    confidence: int = Field(ge=0, le=100)
    critical_issues: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    recommendations: tuple[str, ...] = ()
    detailed_analysis: str = ""
    justification: str | None = None
    conditions: tuple[str, ...] | None = None
    execution_time: float = 0.0
    # True when the result came from the database (work already done), not a fresh run.
    reused: bool = False
    # False when the agent did not run at all (failed dependency, no executor, ...).
    ran: bool = True
    result_id: str | None = None

    @property
    def band(self) -> str:
        return priority_band(self.priority)

    def summary(self) -> str:
        return f"{self.code} sub-agent: {self.verdict.value} ({self.confidence})"


def error_output(message: str) -> AgentOutput:
    # The message may quote the agent (its stderr, an exception): NULs are escaped, not refused.
    return AgentOutput(
        verdict=Verdict.ERROR, confidence=0, critical_issues=[escape_nul(message)[:2000]]
    )


def validate_agent_output(raw: Any) -> AgentOutput:
    """Validate what an executor returned; anything malformed becomes verdict ERROR."""
    if isinstance(raw, AgentOutput):
        return raw
    if not isinstance(raw, Mapping):
        return error_output(
            f"sub-agent output must be a JSON object, got {type(raw).__name__}: {str(raw)[:200]!r}"
        )
    try:
        return AgentOutput.model_validate(dict(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'output'}: {err['msg']}"
            for err in exc.errors()
        )
        return error_output(f"sub-agent output failed validation: {problems}")


class AggregateVerdict(BaseModel):
    """The orchestration verdict over all agents of a handoff (docs/leo-domain.md 3.7)."""

    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    can_proceed: bool
    confidence: int
    message: str
    total_agents: int
    passed: int
    failed: int
    blocked: int


def aggregate(results: Iterable[SubAgentResult]) -> AggregateVerdict:
    """BLOCKED if a CRITICAL/HIGH agent FAILed (or ERRORed), else BLOCKED if any BLOCKED, else
    CONDITIONAL_PASS if any FAIL/ERROR, else PASS if all passed, else WARNING. No agents: PASS.

    ERROR counts as FAIL here: a timeout blocks the handoff by the agent's priority.
    """
    items = list(results)
    failing = [r for r in items if r.verdict in (Verdict.FAIL, Verdict.ERROR)]
    blocked = [r for r in items if r.verdict is Verdict.BLOCKED]
    passed = [r for r in items if r.verdict in (Verdict.PASS, Verdict.CONDITIONAL_PASS)]
    confidence = sum(r.confidence for r in items) // len(items) if items else 100
    if any(r.priority >= BLOCKING_PRIORITY for r in failing):
        names = ", ".join(f"{r.code} ({r.verdict.value})" for r in failing)
        verdict, message = Verdict.BLOCKED, f"high-priority sub-agents failed: {names}"
    elif blocked:
        names = ", ".join(r.code for r in blocked)
        verdict, message = Verdict.BLOCKED, f"sub-agents blocked: {names}"
    elif failing:
        names = ", ".join(r.code for r in failing)
        verdict, message = Verdict.CONDITIONAL_PASS, f"lower-priority sub-agents failed: {names}"
    elif len(passed) == len(items):
        verdict = Verdict.PASS
        message = f"all {len(items)} sub-agents passed" if items else "no sub-agents required"
    else:
        verdict, message = Verdict.WARNING, "some sub-agents returned warnings"
    return AggregateVerdict(
        verdict=verdict,
        can_proceed=verdict in (Verdict.PASS, Verdict.CONDITIONAL_PASS, Verdict.WARNING),
        confidence=confidence,
        message=message,
        total_agents=len(items),
        passed=len(passed),
        failed=len(failing),
        blocked=len(blocked),
    )


def _cut(items: tuple[str, ...] | None, chars: int, count: int) -> tuple[str, ...] | None:
    if items is None:
        return None
    kept = tuple(trim_text(i, chars) for i in items[:count])
    if len(items) > count:
        kept += (f"[... {len(items) - count} more trimmed]",)
    return kept


def fit_result(result: SubAgentResult, budget: int = AGENT_RESULT_BUDGET_BYTES) -> SubAgentResult:
    """The result as the workflow carries it: within the agent's share of the handoff's
    payload budget. Over it, text is trimmed (verdict and confidence never change) and a warning
    says so; the full output stays in sub_agent_execution_results."""
    size = json_size(result)
    if size <= budget:
        return result
    note = (
        f"{result.code} output trimmed from {size:,} bytes to its {budget:,}-byte share of the "
        "handoff's payload budget; the full output is in sub_agent_execution_results"
        + (f" row {result.result_id}" if result.result_id else "")
    )
    chars, count = 2000, 20
    while True:
        trimmed = result.model_copy(
            update={
                "critical_issues": _cut(result.critical_issues, chars, count),
                "warnings": (note, *(_cut(result.warnings, chars, count) or ())),
                "recommendations": _cut(result.recommendations, chars, count),
                "conditions": _cut(result.conditions, chars, count),
                "detailed_analysis": trim_text(result.detailed_analysis, chars * 2),
                "justification": trim_text(result.justification, chars),
            }
        )
        if json_size(trimmed) <= budget or chars <= 16:
            return trimmed
        chars, count = chars // 2, max(count // 2, 1)
