"""The payload budget: how large anything LEO hands to Temporal may be, in one place.

Temporal refuses a payload over 2 MiB (PAYLOADS_TOO_LARGE; the workflow task then fails and is
retried for ever) and warns over 256 KiB; a workflow task's commands together must stay under the
4 MiB gRPC limit. LEO stays well inside: every workflow and activity input and result is at most
PAYLOAD_BUDGET_BYTES, and the parts that grow with an SD or with agent output have their own
shares of it. docs/reliability.md lists these numbers and what a user sees at each one.

Pure functions only (no temporalio, no asyncpg): workflow code calls them too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

KIB = 1024
TEMPORAL_PAYLOAD_ERROR_BYTES = 2 * KIB * KIB
TEMPORAL_PAYLOAD_WARN_BYTES = 256 * KIB

# Any one workflow/activity input or result, and a failure's details.
PAYLOAD_BUDGET_BYTES = 200 * KIB
# The handoff snapshot (the snapshot step's result, and part of the commit step's input).
SNAPSHOT_BUDGET_BYTES = 96 * KIB
# One sub-agent's input: the snapshot as that agent sees it. Several agents are scheduled in one
# workflow task, so MAX_SUB_AGENTS x AGENT_INPUT_BUDGET_BYTES stays far under 4 MiB.
AGENT_INPUT_BUDGET_BYTES = 64 * KIB
# The longest string an agent's view keeps before trimming harder (halved until it fits).
AGENT_VIEW_TEXT_CHARS = 8 * KIB
# One sub-agent's result as the workflow carries it (the full output stays in the database).
AGENT_RESULT_BUDGET_BYTES = 6 * KIB
# Agents in one handoff (mandatory + extra): their results share the handoff's result.
MAX_SUB_AGENTS = 16
# The gates' outcomes (issues and warnings) as the workflow carries them; the handoff record
# keeps its own bounded summary (leo/gates/core.py, 60 KB).
GATES_RESULT_BUDGET_BYTES = 32 * KIB
# What a handoff result adds besides its agents' results and its gates (ids, phases, scores).
RESULT_OVERHEAD_BYTES = 8 * KIB
# EXEC's completion report (an update's input, stored in the lifecycle's history).
EXEC_REPORT_BUDGET_BYTES = 64 * KIB

# Per-field limits on what an SD brings into a handoff, in bytes of its JSON encoding (UTF-8).
# A field over its limit refuses the handoff before anything runs, naming the field.
SD_FIELD_LIMITS: dict[str, int] = {
    "title": 1 * KIB,
    "description": 32 * KIB,
    "scope": 16 * KIB,
    "rationale": 16 * KIB,
    "success_criteria": 8 * KIB,
    "success_metrics": 8 * KIB,
    "metadata": 16 * KIB,
}
PRD_FIELD_LIMITS: dict[str, int] = {
    "executive_summary": 16 * KIB,
    "functional_requirements": 16 * KIB,
    "test_scenarios": 16 * KIB,
    "metadata": 8 * KIB,
}
MAX_STORIES = 100
STORIES_LIMIT_BYTES = 32 * KIB
# EXEC's report appends its `commits` to the SD's `metadata` (db/functions/exec_report.sql),
# which the next handoff holds to SD_FIELD_LIMITS["metadata"]. So the two budgets agree: one
# report's commits take at most half of that limit (refused when the report arrives), and a
# report whose commits would push `metadata` over the limit is refused before it is recorded
# (check_report_commits), so an accepted report can never make the next handoff impossible.
EXEC_REPORT_COMMITS_BYTES = SD_FIELD_LIMITS["metadata"] // 2

SD_TOO_LARGE = "SD_TOO_LARGE"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"


class BudgetExceededError(ValueError):
    """Something is over its share. `code` is SD_TOO_LARGE or PAYLOAD_TOO_LARGE; the message
    names the field and the limit."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def json_size(value: Any) -> int:
    """Bytes of the JSON encoding Temporal's pydantic converter would send."""
    if isinstance(value, BaseModel):
        return len(value.model_dump_json().encode())
    return len(json.dumps(value, ensure_ascii=False, default=str).encode())


def _kib(n: int) -> str:
    return f"{n / KIB:,.1f} KiB" if n >= KIB else f"{n} bytes"


def check_fields(where: str, row: Mapping[str, Any], limits: Mapping[str, int]) -> None:
    for field, limit in limits.items():
        value = row.get(field)
        if value is None:
            continue
        size = json_size(value)
        if size > limit:
            raise BudgetExceededError(
                SD_TOO_LARGE,
                f"{where} field `{field}` is {_kib(size)}; the limit is {_kib(limit)} "
                "(docs/reliability.md, payload budget): shorten it, or keep long material "
                "outside the SD and link to it",
            )


def check_stories(where: str, stories: list[Mapping[str, Any]]) -> None:
    if len(stories) > MAX_STORIES:
        raise BudgetExceededError(
            SD_TOO_LARGE,
            f"{where} has {len(stories):,} `stories`; the limit is {MAX_STORIES} per SD "
            "(docs/reliability.md, payload budget): split the SD",
        )
    size = json_size(list(stories))
    if size > STORIES_LIMIT_BYTES:
        raise BudgetExceededError(
            SD_TOO_LARGE,
            f"{where} `stories` take {_kib(size)}; the limit is {_kib(STORIES_LIMIT_BYTES)} "
            "(docs/reliability.md, payload budget): shorten them or split the SD",
        )


def check_report_commits(metadata: Mapping[str, Any] | None, commits: Sequence[str]) -> None:
    """Refuses (SD_TOO_LARGE) commits that would push the SD's `metadata` over its limit once
    appended as fn_record_exec_report appends them (`metadata.commits || commits`)."""
    if not commits:
        return
    merged = dict(metadata or {})
    if "commits" not in merged:
        appended: list[Any] = list(commits)
    elif isinstance(merged["commits"], list):
        appended = [*merged["commits"], *commits]
    else:  # jsonb `||` makes a scalar or object the first element
        appended = [merged["commits"], *commits]
    merged["commits"] = appended
    limit = SD_FIELD_LIMITS["metadata"]
    size = json_size(merged)
    if size > limit:
        raise BudgetExceededError(
            SD_TOO_LARGE,
            f"the report's {len(commits)} `commits` would make SD field `metadata` "
            f"{_kib(size)} (it is {_kib(json_size(metadata or {}))} now); the limit is "
            f"{_kib(limit)} (docs/reliability.md, payload budget): send fewer commits, or "
            "trim metadata.commits with `leo sd update`",
        )


def check_sub_agent_count(count: int) -> None:
    if count > MAX_SUB_AGENTS:
        raise BudgetExceededError(
            PAYLOAD_TOO_LARGE,
            f"this handoff would run {count} `sub_agents`; the limit is {MAX_SUB_AGENTS} "
            "per handoff (docs/reliability.md, payload budget)",
        )


def check_size(what: str, size: int, limit: int, code: str = PAYLOAD_TOO_LARGE) -> None:
    if size > limit:
        raise BudgetExceededError(
            code,
            f"{what} would be {_kib(size)}; the limit is {_kib(limit)} "
            "(docs/reliability.md, payload budget)",
        )


def trim_text(value: Any, max_chars: int) -> Any:
    """Every string in a JSON-like value cut to max_chars, marked as trimmed."""
    if isinstance(value, str):
        if len(value) <= max_chars:
            return value
        return value[:max_chars] + f" [... trimmed {len(value) - max_chars} chars]"
    if isinstance(value, list):
        return [trim_text(v, max_chars) for v in value]
    if isinstance(value, dict):
        return {k: trim_text(v, max_chars) for k, v in value.items()}
    return value


def check_result_budget(
    sub_agents: Sequence[BaseModel],
    evaluation: BaseModel,
    orchestration: BaseModel,
    *others: BaseModel,
) -> None:
    """The handoff's result (and the decision and apply steps' payloads, and a rejection's
    failure details) carries the gates, the verdict, every agent's result and the transition
    context (`others`): all of it must fit before the transition is applied, so that a run
    which applies it can also complete."""
    size = (
        json_size(evaluation)
        + json_size(orchestration)
        + sum(json_size(r) for r in sub_agents)
        + sum(json_size(o) for o in others)
        + RESULT_OVERHEAD_BYTES
    )
    check_size("the handoff's result (gates and sub-agent results)", size, PAYLOAD_BUDGET_BYTES)
