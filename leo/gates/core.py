"""Gates: result schema, registry and scoring against the SD type's threshold.

A gate is a function over a frozen `GateContext` that returns
`{passed: bool, score: number, max_score: number > 0, issues: [str]}` (`maxScore` accepted).
Malformed results and gates that raise fail closed with an issue that says what was wrong.
Skipped gates are reported with their reason and left out of the weighted average; a failed
required gate stops evaluation; the unrounded average is compared with the threshold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from leo.domain.gates import GateOutcome, GateStatus, GateSummary
from leo.domain.handoffs import HandoffType
from leo.domain.snapshot import HandoffSnapshot
from leo.domain.storable import StorableModel, escape_nul
from leo.domain.verdicts import AggregateVerdict, SubAgentResult
from leo.gates.policy import gate_threshold, should_skip_gate

THRESHOLD_GATE = "SD_TYPE_THRESHOLD"
# The handoff record keeps at most 100 KB of gate summary (jsonb); the summary we send stays well
# below, so that neither the transition nor the rejection record refuses it.
GATE_SUMMARY_BUDGET_BYTES = 60_000
# What a gate's issues and warnings are cut to when the summary would exceed the budget.
TRIMMED_MESSAGES = 10
TRIMMED_MESSAGE_CHARS = 300


def exact(value: float | int) -> Fraction:
    """The decimal a number was written as, exactly: 0.1 is 1/10, not the binary double
    nearest to it (Fraction(0.1) is 3602879701896397/36028797018963968). A float's repr is
    the shortest decimal that reads back as the same float, which is what its author wrote."""
    return Fraction(repr(value)) if isinstance(value, float) else Fraction(value)


def format_exact(value: Fraction) -> str:
    """A score as a decimal that hides nothing: exact when it terminates within 6 decimals,
    else the fraction with its value to 6 decimals ("1000/12 (83.333333)")."""
    for places in range(7):
        scaled = value * 10**places
        if scaled.denominator == 1:
            sign = "-" if scaled.numerator < 0 else ""
            digits = str(abs(scaled.numerator)).rjust(places + 1, "0")
            return f"{sign}{digits[:-places]}.{digits[-places:]}" if places else f"{sign}{digits}"
    return f"{value.numerator}/{value.denominator} ({float(value):.6f})"


class GateContext(BaseModel):
    """What a gate sees. Each gate gets its own deep copy."""

    model_config = ConfigDict(frozen=True)

    snapshot: HandoffSnapshot
    sub_agents: tuple[SubAgentResult, ...] = ()
    orchestration: AggregateVerdict | None = None

    def sub_agent(self, code: str) -> SubAgentResult | None:
        return next((r for r in self.sub_agents if r.code == code), None)


GateFunction = Callable[[GateContext], Any]


@dataclass(frozen=True)
class Gate:
    name: str
    check: GateFunction
    required: bool = True
    weight: float = 1.0
    description: str = ""


class _GateResultSchema(StorableModel):
    # Storable: a NUL in an issue would fail the handoff's commit on every retry; such a
    # result is malformed, naming the field.
    model_config = ConfigDict(extra="ignore", strict=True)

    passed: bool
    score: float = Field(ge=0)
    max_score: float = Field(gt=0)
    issues: list[str]
    warnings: list[str] = Field(default_factory=list)


def validate_gate_result(raw: Any) -> tuple[_GateResultSchema | None, str | None]:
    """The gate's result, or why it is malformed. Never "fixes" a result."""
    if not isinstance(raw, Mapping):
        return None, f"gate returned {type(raw).__name__}, not an object"
    data = dict(raw)
    if "maxScore" in data and "max_score" not in data:
        data["max_score"] = data.pop("maxScore")
    if "issues" not in data:
        return None, "gate result has no 'issues' list"
    for key in ("score", "max_score"):
        value = data.get(key)
        # strict mode refuses "90"; allow ints for floats but never bools.
        if isinstance(value, bool):
            return None, f"gate result field '{key}' must be a number, got a boolean"
        if isinstance(value, int):
            try:
                data[key] = float(value)
            except OverflowError:  # an int beyond float range would crash the evaluation
                return None, f"gate result field '{key}' must be finite"
        if isinstance(value, float) and not math.isfinite(value):
            return None, f"gate result field '{key}' must be finite"
    try:
        result = _GateResultSchema.model_validate(data)
    except Exception as exc:
        errors = getattr(exc, "errors", None)
        if callable(errors):
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'result'}: {e['msg']}" for e in errors()
            )
        else:
            detail = str(exc)
        return None, f"gate result is malformed: {detail}"
    if result.score > result.max_score:
        return None, f"gate result score {result.score} exceeds max_score {result.max_score}"
    return result, None


class GateEvaluation(BaseModel):
    model_config = ConfigDict(frozen=True)

    passed: bool
    normalized_score: float | None
    threshold: float
    sd_type: str
    failed_gate: str | None = None
    gates: tuple[GateOutcome, ...] = ()
    issues: tuple[str, ...] = ()

    def summary(self, sub_agent_verdict: str | None = None) -> GateSummary:
        return GateSummary(
            passed=self.passed,
            normalized_score=self.normalized_score,
            threshold=self.threshold,
            sd_type=self.sd_type,
            failed_gate=self.failed_gate,
            gate_results=[g.model_dump(mode="json") for g in self.gates],
            sub_agent_verdict=sub_agent_verdict,
        )


class GateRegistry:
    """Gates per handoff type, in evaluation order. Projects add their own with `add`."""

    def __init__(self) -> None:
        self._gates: dict[HandoffType, list[Gate]] = {h: [] for h in HandoffType}

    def add(self, handoff: HandoffType | str, gate: Gate) -> None:
        key = HandoffType(handoff)
        if any(g.name == gate.name for g in self._gates[key]):
            raise ValueError(f"{key.value} already has a gate named {gate.name}")
        if not math.isfinite(gate.weight) or gate.weight <= 0:
            raise ValueError(f"gate {gate.name}: weight must be a positive number")
        self._gates[key].append(gate)

    def gates(self, handoff: HandoffType | str) -> tuple[Gate, ...]:
        return tuple(self._gates[HandoffType(handoff)])


def _run_gate(gate: Gate, ctx: GateContext) -> GateOutcome:
    base = {"name": gate.name, "required": gate.required, "weight": gate.weight}
    try:
        raw = gate.check(ctx.model_copy(deep=True))
    except Exception as exc:
        return GateOutcome(
            **base,
            status=GateStatus.FAILED,
            score=0.0,
            max_score=100.0,
            percent=0.0,
            issues=(escape_nul(f"gate raised {type(exc).__name__}: {exc}"),),
        )
    result, problem = validate_gate_result(raw)
    if result is None:
        return GateOutcome(
            **base,
            status=GateStatus.FAILED,
            score=0.0,
            max_score=100.0,
            percent=0.0,
            issues=(f"malformed gate result: {problem}",),
        )
    return GateOutcome(
        **base,
        status=GateStatus.PASSED if result.passed else GateStatus.FAILED,
        score=result.score,
        max_score=result.max_score,
        percent=float(exact(result.score) * 100 / exact(result.max_score)),
        issues=tuple(result.issues),
        warnings=tuple(result.warnings),
    )


def evaluate_gates(gates: Iterable[Gate], ctx: GateContext) -> GateEvaluation:
    sd_type = ctx.snapshot.sd.sd_type
    threshold = gate_threshold(sd_type)
    outcomes: list[GateOutcome] = []
    weighted = Fraction(0)
    total_weight = Fraction(0)
    for gate in gates:
        skip = should_skip_gate(gate.name, sd_type)
        if skip is not None:
            outcomes.append(
                GateOutcome(
                    name=gate.name,
                    status=GateStatus.SKIPPED,
                    required=gate.required,
                    weight=gate.weight,
                    skip_reason=f"{skip.reason_code}: {skip.reason}",
                )
            )
            continue
        outcome = _run_gate(gate, ctx)
        outcomes.append(outcome)
        assert outcome.score is not None
        assert outcome.max_score is not None
        # Exact decimal arithmetic: ten weights of 0.1 sum to exactly 1, so a score of exactly
        # the threshold passes it.
        percent = exact(outcome.score) * 100 / exact(outcome.max_score)
        weighted += percent * exact(gate.weight)
        total_weight += exact(gate.weight)
        if outcome.status is GateStatus.FAILED and gate.required:
            return GateEvaluation(
                passed=False,
                normalized_score=float(weighted / total_weight),
                threshold=threshold,
                sd_type=sd_type,
                failed_gate=gate.name,
                gates=tuple(outcomes),
                issues=outcome.issues,
            )
    if total_weight == 0:
        # No applicable gates: nothing to block on (LEO's synthetic 0 % block was a bug).
        return GateEvaluation(
            passed=True,
            normalized_score=None,
            threshold=threshold,
            sd_type=sd_type,
            gates=tuple(outcomes),
        )
    score = weighted / total_weight
    # Exact rational comparison on the unrounded score: a security SD at 89.9 is blocked.
    if score < exact(threshold):
        return GateEvaluation(
            passed=False,
            normalized_score=float(score),
            threshold=threshold,
            sd_type=sd_type,
            failed_gate=THRESHOLD_GATE,
            gates=tuple(outcomes),
            issues=(
                f"SD type '{sd_type}' requires a gate score of at least "
                f"{format_exact(exact(threshold))}%, got {format_exact(score)}% "
                f"(weighted average over {len([o for o in outcomes if o.score is not None])} "
                "scored gates)",
            ),
        )
    return GateEvaluation(
        passed=True,
        normalized_score=float(score),
        threshold=threshold,
        sd_type=sd_type,
        gates=tuple(outcomes),
    )


def _summary_size(summary: GateSummary) -> int:
    return len(json.dumps(summary.model_dump(mode="json", exclude_none=True)).encode())


def bounded_gate_summary(
    summary: GateSummary, budget: int = GATE_SUMMARY_BUDGET_BYTES
) -> GateSummary:
    """The summary, cut to fit the handoff record: first each gate's issues and warnings are
    shortened (and counted), then dropped. Names, statuses and scores are always kept, and
    `truncated` says that something was cut. The verdict itself is never changed."""
    if _summary_size(summary) <= budget:
        return summary

    def cut(messages: list[str]) -> list[str]:
        kept = [m[:TRIMMED_MESSAGE_CHARS] for m in messages[:TRIMMED_MESSAGES]]
        if len(messages) > TRIMMED_MESSAGES:
            kept.append(f"... and {len(messages) - TRIMMED_MESSAGES} more")
        return kept

    trimmed = [
        {
            **g,
            "issues": cut(list(g.get("issues") or [])),
            "warnings": cut(list(g.get("warnings") or [])),
        }
        for g in summary.gate_results
    ]
    bounded = summary.model_copy(update={"gate_results": trimmed, "truncated": True})
    if _summary_size(bounded) <= budget:
        return bounded
    bare = [
        {k: v for k, v in g.items() if k not in ("issues", "warnings", "skip_reason")}
        for g in summary.gate_results
    ]
    bounded = summary.model_copy(update={"gate_results": bare, "truncated": True})
    if _summary_size(bounded) <= budget:
        return bounded
    # Only a pathological number of gates gets here: keep the verdict fields alone.
    return summary.model_copy(update={"gate_results": [], "truncated": True})
