"""SD-type policy: gate thresholds (4.4) and the one place where applicability lives (4.5):
which gates (`should_skip_gate`) and which sub-agents (`should_skip_sub_agent`) do not apply
to an SD type. Both read the same matrix, so a validator never applies to one and not the other.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# THRESHOLD_PROFILES[type].gateThreshold from LEO's sd-type-checker. Lookup is
# case-insensitive (the original's exact-case lookup silently fell back to the default).
GATE_THRESHOLDS: dict[str, float] = {
    "feature": 85,
    "security": 90,
    "infrastructure": 80,
    "documentation": 60,
    "docs": 60,
    "orchestrator": 70,
    "process": 70,
    "qa": 70,
    "uat": 70,
    "api": 75,
    "backend": 75,
    "enhancement": 75,
    "bugfix": 85,
    "refactor": 75,
    "database": 80,
    "performance": 80,
}
DEFAULT_GATE_THRESHOLD: float = 85


def gate_threshold(sd_type: str) -> float:
    return GATE_THRESHOLDS.get(sd_type.strip().lower(), DEFAULT_GATE_THRESHOLD)


# The applicability matrix (policy 1.1.0): validators that do not apply to a type.
# Unknown types and unlisted validators are REQUIRED.
NON_APPLICABLE: dict[str, frozenset[str]] = {
    "infrastructure": frozenset({"TESTING", "DESIGN", "GITHUB"}),
    "documentation": frozenset(
        {"TESTING", "DESIGN", "GITHUB", "DATABASE", "REGRESSION", "STORIES"}
    ),
    "docs": frozenset({"TESTING", "DESIGN", "GITHUB", "DATABASE", "REGRESSION", "STORIES"}),
    "process": frozenset({"TESTING", "DESIGN", "GITHUB", "DATABASE", "REGRESSION", "STORIES"}),
    "orchestrator": frozenset(
        {"TESTING", "DESIGN", "GITHUB", "DATABASE", "REGRESSION", "STORIES", "DOCMON"}
    ),
    "refactor": frozenset({"TESTING", "DESIGN", "DATABASE", "STORIES"}),
    "bugfix": frozenset({"DESIGN"}),
    "database": frozenset({"DESIGN"}),
}
LIGHTWEIGHT_SD_TYPES = frozenset(
    {
        "infrastructure",
        "documentation",
        "docs",
        "orchestrator",
        "process",
        "qa",
        "discovery_spike",
        "bugfix",
        "refactor",
        "ux_debt",
        "implementation",
    }
)
# Planning-detail gates that lightweight types skip.
LIGHTWEIGHT_SKIPPED_GATES = frozenset(
    {"FILE_SCOPE", "EXPLORATION_AUDIT", "EXECUTION_PLAN", "DELIVERABLES_PLANNING"}
)


class SkipDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    reason_code: str
    reason: str


# The validator (applicability-policy key) behind each built-in gate. A gate not listed is its
# own validator, so a project gate named e.g. "DESIGN" follows the DESIGN row of the matrix.
GATE_VALIDATORS: dict[str, str] = {
    "MANDATORY_TESTING_VALIDATION": "TESTING",
    "GATE_USER_STORIES_DEFINED": "STORIES",
    "USER_STORY_EXISTENCE_GATE": "STORIES",
    "USER_STORIES_COMPLETE": "STORIES",
    "GATE_DELIVERABLES_PLANNING": "DELIVERABLES_PLANNING",
    "GATE_EXPLORATION_AUDIT": "EXPLORATION_AUDIT",
    "GATE_FILE_SCOPE": "FILE_SCOPE",
    "GATE_EXECUTION_PLAN": "EXECUTION_PLAN",
    "GATE1_DESIGN_DATABASE": "DESIGN",
    "GATE5_GIT_COMMIT_ENFORCEMENT": "GITHUB",
}


def should_skip_gate(gate_name: str, sd_type: str) -> SkipDecision | None:
    """Whether a gate does not apply to an SD type, and why. None means it runs."""
    return should_skip_validator(GATE_VALIDATORS.get(gate_name.upper(), gate_name.upper()), sd_type)


def should_skip_sub_agent(code: str, sd_type: str) -> SkipDecision | None:
    """Whether a sub-agent does not apply to an SD type, and why: the agent's code is its
    validator, so GITHUB follows the same row as the GITHUB gate. None means it runs."""
    return should_skip_validator(code.strip().upper(), sd_type)


def should_skip_validator(validator: str, sd_type: str) -> SkipDecision | None:
    sd_type = sd_type.strip().lower()
    if validator in NON_APPLICABLE.get(sd_type, frozenset()):
        return SkipDecision(
            reason_code="NON_APPLICABLE_SD_TYPE",
            reason=f"{validator} does not apply to {sd_type} SDs",
        )
    if sd_type in LIGHTWEIGHT_SD_TYPES and validator in LIGHTWEIGHT_SKIPPED_GATES:
        return SkipDecision(
            reason_code="NON_APPLICABLE_SD_TYPE",
            reason=f"{sd_type} is a lightweight SD type; {validator} is not required",
        )
    return None


# LEO's retrospectiveQuality: the lowest retrospective quality score (0-100) that passes
# RETROSPECTIVE_QUALITY_GATE. LEO uses 50 for bugfix SDs; its other per-type values are not
# in our sources, so every type uses that floor until they are.
RETROSPECTIVE_MIN_QUALITY: dict[str, int] = {}
DEFAULT_RETROSPECTIVE_MIN_QUALITY = 50


def retrospective_min_quality(sd_type: str) -> int:
    return RETROSPECTIVE_MIN_QUALITY.get(sd_type.strip().lower(), DEFAULT_RETROSPECTIVE_MIN_QUALITY)
