"""The immutable snapshot a handoff works from: SD, PRD, stories, earlier handoffs, evidence.

Loaded once per handoff attempt in one consistent read. Every gate and sub-agent gets its own
deep copy of frozen models, so nothing one of them does can change what another one, or the
transition, sees.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from leo.domain.handoffs import HandoffType
from leo.domain.verdicts import Verdict, known_verdict


class Frozen(BaseModel):
    # extra="ignore": a newer schema column must not break decoding of older histories.
    model_config = ConfigDict(frozen=True, extra="ignore")


class SdSnapshot(Frozen):
    id: str
    sd_key: str
    title: str
    description: str = ""
    scope: str = ""
    rationale: str = ""
    category: str | None = None
    sd_type: str
    status: str
    current_phase: str
    priority: str
    intensity_level: str | None = None
    success_criteria: list[Any] = Field(default_factory=list)
    success_metrics: list[Any] = Field(default_factory=list)
    transition_version: int
    claiming_session_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class PrdSnapshot(Frozen):
    id: str
    title: str
    status: str
    phase: str
    executive_summary: str = ""
    functional_requirements: list[Any] = Field(default_factory=list)
    test_scenarios: list[Any] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class StorySnapshot(Frozen):
    story_key: str
    title: str
    status: str
    validation_status: str
    e2e_test_status: str
    e2e_test_path: str | None = None
    acceptance_criteria: list[Any] = Field(default_factory=list)


class HandoffRecord(Frozen):
    handoff_type: str
    status: str
    validation_score: float | None = None
    created_at: datetime


class SubAgentEvidence(Frozen):
    """A sub-agent result recorded earlier (any handoff attempt)."""

    sub_agent_code: str
    phase: str
    verdict: str
    confidence: int
    created_at: datetime


class RetrospectiveRecord(Frozen):
    quality_score: int
    created_at: datetime


class SubAgentSpec(Frozen):
    """One row of the `leo_sub_agents` catalogue."""

    code: str
    name: str
    priority: int = 50
    depends_on: tuple[str, ...] = ()
    timeout_seconds: float = 60.0
    executor_kind: str | None = None
    executor_ref: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    # Names of worker environment variables a command agent also gets (docs/sub-agents.md).
    env_passthrough: tuple[str, ...] = ()
    # The width of the reuse time bucket: a recorded result stands in for a new run on the
    # same input within the same bucket (0 = never reuse; docs/sub-agents.md).
    reuse_window_seconds: int = 0
    # The snapshot parts the agent reads (None = all); see leo.domain.snapshot_budget.
    input_parts: tuple[str, ...] | None = None
    # argv of a command whose output fingerprints the world outside the snapshot the agent's
    # verdict depends on; a command or python agent without one is never reused.
    reuse_fingerprint: tuple[str, ...] | None = None

    @classmethod
    def from_row(cls, row: Any) -> SubAgentSpec:
        data = dict(row)
        data["depends_on"] = tuple(data.get("depends_on") or ())
        data["env_passthrough"] = tuple(data.get("env_passthrough") or ())
        if data.get("input_parts") is not None:
            data["input_parts"] = tuple(data["input_parts"])
        if data.get("reuse_fingerprint") is not None:
            data["reuse_fingerprint"] = tuple(data["reuse_fingerprint"])
        if isinstance(data.get("timeout_seconds"), Decimal):
            data["timeout_seconds"] = float(data["timeout_seconds"])
        return cls.model_validate(data)


class AcceptedRecord(Frozen):
    """The accepted record of this handoff on this SD, when one exists: a repeated start
    returns it instead of running again (gates are GateOutcome dumps)."""

    handoff_id: str
    audit_id: str | None = None
    request_id: str | None = None
    normalized_score: float | None = None
    threshold: float | None = None
    gates: tuple[dict[str, Any], ...] = ()
    # A verdict outside LEO's set reads as None (shown as the record's default, PASS): the
    # workflow builds a Verdict from it, and a ValueError there would fail its task for ever.
    sub_agent_verdict: Verdict | None = None
    sub_agents: dict[str, str] = Field(default_factory=dict)
    transition_version: int | None = None
    new_phase: str | None = None
    new_status: str | None = None
    previous_phase: str | None = None
    workflow_id: str | None = None
    run_id: str | None = None
    accepted_at: datetime | None = None

    @field_validator("sub_agent_verdict", mode="before")
    @classmethod
    def _known_verdict(cls, value: Any) -> Verdict | None:
        return known_verdict(value)


class HandoffSnapshot(Frozen):
    handoff_type: HandoffType
    phase: str
    sd: SdSnapshot
    prd: PrdSnapshot | None = None
    stories: tuple[StorySnapshot, ...] = ()
    handoffs: tuple[HandoffRecord, ...] = ()
    evidence: tuple[SubAgentEvidence, ...] = ()
    retrospectives: tuple[RetrospectiveRecord, ...] = ()
    # The agents this handoff runs, resolved from the phase, sd_type and catalogue.
    sub_agents: tuple[SubAgentSpec, ...] = ()
    # Agents the selection requires that have no catalogue row or no executor.
    missing_sub_agents: tuple[str, ...] = ()
    loaded_at: datetime
    # Set when this handoff was already accepted for the SD: nothing runs again.
    already_accepted: AcceptedRecord | None = None

    def accepted(self, handoff_type: HandoffType) -> bool:
        return any(
            h.handoff_type == handoff_type.value and h.status == "accepted" for h in self.handoffs
        )
