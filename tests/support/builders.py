"""In-memory builders for handoff snapshots, for the pure (no-server) unit tests.

Every builder returns a real frozen model from `leo.domain.snapshot`; keyword arguments override the
defaults, so a test states only what it is about.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from leo.domain.handoffs import HANDOFF_PHASE, HandoffType
from leo.domain.snapshot import (
    HandoffRecord,
    HandoffSnapshot,
    PrdSnapshot,
    RetrospectiveRecord,
    SdSnapshot,
    StorySnapshot,
    SubAgentEvidence,
    SubAgentSpec,
)
from leo.domain.verdicts import AggregateVerdict, SubAgentResult, Verdict
from leo.gates.core import GateContext

T0 = datetime(2026, 1, 29, 12, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    """A fixed point in time, `minutes` after T0 (so ordering is explicit in tests)."""
    return T0 + timedelta(minutes=minutes)


def sd(**overrides: Any) -> SdSnapshot:
    data: dict[str, Any] = {
        "id": "SD-UNIT-001",
        "sd_key": "SD-UNIT-001",
        "title": "Unit test directive",
        "description": "A directive built in memory.",
        "scope": "Tests only",
        "sd_type": "feature",
        "status": "active",
        "current_phase": "EXEC",
        "priority": "high",
        "success_criteria": ["it works"],
        "transition_version": 3,
    }
    data.update(overrides)
    return SdSnapshot.model_validate(data)


def prd(**overrides: Any) -> PrdSnapshot:
    data: dict[str, Any] = {
        "id": "PRD-SD-UNIT-001",
        "title": "Unit test PRD",
        "status": "approved",
        "phase": "EXEC",
        "functional_requirements": [{"id": "FR-1", "requirement": "do it"}],
        "test_scenarios": [{"id": "TS-1", "scenario": "it is done"}],
    }
    data.update(overrides)
    return PrdSnapshot.model_validate(data)


def story(number: int = 1, **overrides: Any) -> StorySnapshot:
    data: dict[str, Any] = {
        "story_key": f"SD-UNIT-001:US-{number:03d}",
        "title": f"Story {number}",
        "status": "completed",
        "validation_status": "validated",
        "e2e_test_status": "passing",
        "acceptance_criteria": ["given when then"],
    }
    data.update(overrides)
    return StorySnapshot.model_validate(data)


def handoff(handoff_type: HandoffType, status: str = "accepted", minutes: int = 0) -> HandoffRecord:
    return HandoffRecord(handoff_type=handoff_type.value, status=status, created_at=at(minutes))


def evidence(
    code: str, verdict: str, phase: str = "PLAN_VERIFY", minutes: int = 0
) -> SubAgentEvidence:
    return SubAgentEvidence(
        sub_agent_code=code, phase=phase, verdict=verdict, confidence=90, created_at=at(minutes)
    )


def retrospective(quality_score: int, minutes: int = 0) -> RetrospectiveRecord:
    return RetrospectiveRecord(quality_score=quality_score, created_at=at(minutes))


def spec(code: str = "UNIT", **overrides: Any) -> SubAgentSpec:
    data: dict[str, Any] = {"code": code, "name": f"{code} agent", "priority": 50}
    data.update(overrides)
    return SubAgentSpec.model_validate(data)


def snapshot(
    handoff_type: HandoffType = HandoffType.EXEC_TO_PLAN,
    *,
    phase: str | None = None,
    sd_type: str | None = None,
    metadata: dict[str, Any] | None = None,
    **overrides: Any,
) -> HandoffSnapshot:
    """A snapshot for `handoff_type`. `sd_type` and `metadata` are shortcuts into the SD;
    pass `sd=builders.sd(...)` for anything else."""
    sd_fields: dict[str, Any] = {}
    if sd_type is not None:
        sd_fields["sd_type"] = sd_type
    if metadata is not None:
        sd_fields["metadata"] = metadata
    data: dict[str, Any] = {
        "handoff_type": handoff_type,
        "phase": phase or HANDOFF_PHASE[handoff_type],
        "sd": sd(**sd_fields),
        "prd": prd(),
        "stories": (story(1), story(2)),
        "loaded_at": at(60),
    }
    data.update(overrides)
    return HandoffSnapshot.model_validate(data)


def sub_agent_result(
    code: str, verdict: Verdict | str, priority: int = 50, confidence: int = 90, **overrides: Any
) -> SubAgentResult:
    return SubAgentResult(
        code=code,
        name=f"{code} agent",
        priority=priority,
        verdict=Verdict(verdict),
        confidence=confidence,
        **overrides,
    )


def gate_context(
    snap: HandoffSnapshot | None = None,
    *,
    sd_type: str | None = None,
    sub_agents: tuple[SubAgentResult, ...] = (),
    orchestration: AggregateVerdict | None = None,
) -> GateContext:
    return GateContext(
        snapshot=snap if snap is not None else snapshot(sd_type=sd_type),
        sub_agents=sub_agents,
        orchestration=orchestration,
    )
