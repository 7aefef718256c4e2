"""What gates conclude: one gate's outcome, and the summary stored on the handoff record."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class GateStatus(StrEnum):
    PASSED = "PASSED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class GateOutcome(BaseModel):
    """One gate's validated result as reported in the handoff result."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: GateStatus
    required: bool
    weight: float
    score: float | None = None
    max_score: float | None = None
    percent: float | None = None
    issues: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    skip_reason: str | None = None


class GateSummary(BaseModel):
    """What the gates concluded; stored on the handoff record."""

    passed: bool
    normalized_score: float | None = None
    threshold: float | None = None
    sd_type: str | None = None
    failed_gate: str | None = None
    gate_results: list[dict[str, Any]] = Field(default_factory=list)
    sub_agent_verdict: str | None = None
    # Set when gate issues and warnings were cut to keep the record within its size limit.
    truncated: bool | None = None
