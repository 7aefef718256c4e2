"""The gates' share of a handoff's payload budget: what the typed result carries of them."""

from __future__ import annotations

from leo.domain.budget import GATES_RESULT_BUDGET_BYTES, json_size, trim_text
from leo.gates.core import GateEvaluation

# Where trimming starts; both are halved until the evaluation fits.
FIRST_MESSAGES = 50
FIRST_MESSAGE_CHARS = 500


def _cut(messages: tuple[str, ...], count: int, chars: int) -> tuple[str, ...]:
    kept = tuple(trim_text(m, chars) for m in messages[:count])
    if len(messages) > count:
        kept += (
            f"... and {len(messages) - count} more (trimmed to fit the handoff's payload budget)",
        )
    return kept


def fit_evaluation(
    evaluation: GateEvaluation, budget: int = GATES_RESULT_BUDGET_BYTES
) -> GateEvaluation:
    """The evaluation as the workflow carries it (decision, result, rejection details): over
    its share, each gate's issues and warnings keep their first messages and say how many more
    there were. Verdict, scores and names never change; the handoff record keeps the bounded
    summary (`bounded_gate_summary`), and nothing is trimmed when it already fits."""
    if json_size(evaluation) <= budget:
        return evaluation
    count, chars = FIRST_MESSAGES, FIRST_MESSAGE_CHARS
    while True:
        trimmed = evaluation.model_copy(
            update={
                "issues": _cut(evaluation.issues, count, chars),
                "gates": tuple(
                    g.model_copy(
                        update={
                            "issues": _cut(g.issues, count, chars),
                            "warnings": _cut(g.warnings, count, chars),
                        }
                    )
                    for g in evaluation.gates
                ),
            }
        )
        if json_size(trimmed) <= budget or count <= 1:
            return trimmed
        count, chars = max(count // 2, 1), max(chars // 2, 50)
