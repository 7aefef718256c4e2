"""Which sub-agents a handoff must run: LEO's mandatory matrix by phase and sd_type (3.2).

Unknown types fall back to the feature list, as in LEO. A mandatory agent that the
applicability policy says does not apply to the SD type (`leo.gates.policy`, the same matrix as
the gates) is not selected: GITHUB at PLAN_VERIFY is not run for an infrastructure SD. Callers
may add agents (`HandoffOptions.extra_sub_agents`), which always run, but never remove a
mandatory one.
"""

from __future__ import annotations

from collections.abc import Iterable

from leo.gates.policy import should_skip_sub_agent

MANDATORY: dict[str, dict[str, tuple[str, ...]]] = {
    "LEAD_PRE_APPROVAL": {"*": ("VALIDATION", "RISK")},
    "PLAN_PRD": {
        "feature": ("DATABASE", "STORIES", "TESTING"),
        "api": ("DATABASE", "STORIES", "TESTING", "API"),
        "security": ("DATABASE", "STORIES", "SECURITY"),
        "documentation": ("STORIES",),
        "docs": ("STORIES",),
        "*": ("DATABASE", "STORIES"),
    },
    "PLAN_VERIFY": {
        "feature": ("TESTING", "SECURITY", "PERFORMANCE", "UAT"),
        "enhancement": ("TESTING", "SECURITY", "PERFORMANCE"),
        "database": ("DATABASE", "SECURITY", "PERFORMANCE"),
        "security": ("TESTING", "SECURITY"),
        "api": ("TESTING", "SECURITY", "PERFORMANCE", "API", "UAT"),
        "documentation": ("DOCMON",),
        "docs": ("DOCMON",),
        "infrastructure": ("GITHUB", "SECURITY"),
        "refactor": ("GITHUB", "DOCMON", "REGRESSION"),
        "*": ("TESTING", "SECURITY", "PERFORMANCE", "UAT"),
    },
    "EXEC_IMPL": {"*": ()},
    "LEAD_FINAL": {"*": ("RETRO",)},
}


def required_sub_agents(phase: str, sd_type: str) -> tuple[str, ...]:
    by_type = MANDATORY.get(phase, {"*": ()})
    listed = by_type.get(sd_type.lower(), by_type["*"])
    return tuple(code for code in listed if should_skip_sub_agent(code, sd_type) is None)


def select_sub_agents(phase: str, sd_type: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Mandatory agents first, then extras, without duplicates, in a stable order (a dict keeps
    first-seen order in linear time)."""
    chosen: dict[str, None] = {}
    for code in (*required_sub_agents(phase, sd_type), *extra):
        normalized = code.strip().upper()
        if normalized:
            chosen.setdefault(normalized)
    return tuple(chosen)


def possible_sub_agents(phase: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Every agent `select_sub_agents` could choose for this phase, whatever the SD's type: the
    snapshot step looks up their recorded results before it has read the SD."""
    chosen: list[str] = []
    for listed in MANDATORY.get(phase, {"*": ()}).values():
        chosen.extend(code for code in listed if code not in chosen)
    for code in extra:
        normalized = code.strip().upper()
        if normalized and normalized not in chosen:
            chosen.append(normalized)
    return tuple(chosen)
