"""The payloads of the five handoff workflows: input, options, result and progress.

These are wire formats kept in recorded histories: fields are only ever added, with defaults.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from leo.domain.budget import MAX_SUB_AGENTS
from leo.domain.gates import GateOutcome
from leo.domain.handoffs import HandoffType
from leo.domain.storable import StorableModel
from leo.domain.verdicts import AggregateVerdict, SubAgentResult

# The catalogue's CHECK on leo_sub_agents.code (db/migrations/0001_schema.sql), in any case and
# with surrounding blanks, as callers have always been allowed to write it.
SubAgentCode = Annotated[
    str, StringConstraints(pattern=r"^\s*[A-Za-z][A-Za-z0-9_]{0,49}\s*$", max_length=60)
]


class HandoffOptions(BaseModel):
    """Per-handoff knobs. Every field is optional, so `{}` is valid JSON input."""

    # Inputs refuse unknown fields: a misspelt option must fail, not silently run a handoff
    # without what was asked for. Fields are only ever added (with defaults), never removed,
    # so recorded histories keep decoding; an older worker refuses a newer client's option.
    model_config = ConfigDict(extra="forbid")

    # Agents to run in addition to the mandatory ones for the phase and sd_type: catalogue codes
    # (any case; selection upper-cases them). Counted when the input is decoded, before any
    # other work: more than a handoff may run is refused at once (INVALID_INPUT).
    extra_sub_agents: list[SubAgentCode] = Field(default_factory=list, max_length=MAX_SUB_AGENTS)
    # Overrides the catalogue's per-agent timeout, in seconds.
    sub_agent_timeout_seconds: float | None = Field(default=None, gt=0, le=3600)


class HandoffInput(StorableModel):
    """`{"sd_id": "...", "session_id": "...", "options": {...}}`; sd_id may be id or sd_key."""

    model_config = ConfigDict(extra="forbid")  # see HandoffOptions

    sd_id: str = Field(min_length=1, max_length=200)
    session_id: str | None = Field(default=None, min_length=1, max_length=200)
    options: HandoffOptions = Field(default_factory=HandoffOptions)


class HandoffResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    handoff_type: HandoffType
    sd_id: str
    sd_key: str
    sd_type: str
    accepted: bool
    outcome: str
    normalized_score: float | None
    threshold: float
    failed_gate: str | None = None
    issues: tuple[str, ...] = ()
    gates: tuple[GateOutcome, ...] = ()
    sub_agents: tuple[SubAgentResult, ...] = ()
    sub_agent_verdict: AggregateVerdict
    audit_id: str | None = None
    handoff_id: str | None = None
    idempotent_hit: bool = False
    previous_phase: str
    new_phase: str
    new_status: str
    transition_version: int
    workflow_id: str
    run_id: str


class SubAgentProgress(BaseModel):
    code: str
    state: str  # pending | running | done | skipped
    verdict: str | None = None
    confidence: int | None = None


class HandoffProgress(BaseModel):
    """What the `progress` query returns while the handoff runs."""

    stage: str  # loading | sub_agents | committing | done
    sd_key: str | None = None
    sub_agents: list[SubAgentProgress] = Field(default_factory=list)
