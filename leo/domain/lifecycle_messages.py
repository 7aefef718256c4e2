"""The payloads of SD-LIFECYCLE: its input, status and step records, and its updates' inputs
(EXEC's report, LEAD's approval, retry) and acknowledgement.

These are wire formats kept in recorded histories: fields are only ever added, with defaults.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from leo.domain.handoff_messages import HandoffOptions
from leo.domain.handoffs import Step


class ExecReport(BaseModel):
    """What EXEC sends with `report_exec_complete`. Free-form evidence goes in `evidence`;
    any other unknown field is refused, so a misspelt `test_results` cannot vanish."""

    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=1, max_length=5000)
    # story_key -> e2e test status (passing, failing, skipped, ...)
    test_results: dict[str, str] = Field(default_factory=dict)
    commits: list[str] = Field(default_factory=list, max_length=500)
    retrospective: dict[str, Any] | None = None
    evidence: dict[str, Any] = Field(default_factory=dict)


class StepRecord(BaseModel):
    """One step's outcome. Ids and times are kept apart from the decision fields, so that two
    runs on twin SDs can be compared field by field."""

    model_config = ConfigDict(frozen=True)

    step: Step
    outcome: str  # accepted | rejected | already_done | bypassed | reported | approved | rejected_by_lead
    attempt: int = 1
    normalized_score: float | None = None
    threshold: float | None = None
    failed_gate: str | None = None
    issues: tuple[str, ...] = ()
    gates: dict[str, str] = Field(default_factory=dict)
    sub_agents: dict[str, str] = Field(default_factory=dict)
    new_status: str | None = None
    new_phase: str | None = None
    transition_version: int | None = None
    detail: str | None = None
    # Identifiers and times.
    workflow_id: str | None = None
    run_id: str | None = None
    audit_id: str | None = None
    handoff_id: str | None = None
    at: datetime | None = None


class LifecycleResume(BaseModel):
    """What a lifecycle carries into its next run when it continues as new during a long wait
    (its history would otherwise grow without bound while it heartbeats its claim)."""

    steps: list[StepRecord] = Field(default_factory=list)
    retries_used: dict[str, int] = Field(default_factory=dict)
    last_rejection: str | None = None
    current_step: Step | None = None
    waiting_for: str | None = None
    deadline: datetime | None = None
    runs: int = 1
    claim_lost_to: str | None = None


class LifecycleInput(BaseModel):
    model_config = ConfigDict(extra="forbid")  # inputs refuse unknown fields: see HandoffOptions

    sd_id: str = Field(min_length=1, max_length=200)
    # The session that holds the SD's claim; defaults to one named after the lifecycle.
    session_id: str | None = Field(default=None, min_length=1, max_length=200)
    options: HandoffOptions = Field(default_factory=HandoffOptions)
    # Re-runs allowed per handoff after a rejection, each one asked for with `retry`.
    max_retries: int = Field(default=3, ge=0, le=100)
    # Overall deadline for the whole chain, waits included; None waits as long as it takes.
    deadline_seconds: float | None = Field(default=None, gt=0)
    # Below the 300 s after which a claim counts as stale.
    claim_heartbeat_seconds: float = Field(default=120, gt=0, lt=300)
    # Set only by the lifecycle itself when it continues as new.
    resume: LifecycleResume | None = None


class LifecycleStatus(BaseModel):
    sd_id: str | None = None
    sd_key: str | None = None
    session_id: str | None = None
    state: str = "starting"  # starting | running | waiting | completed | rejected_by_lead | cancelled | expired | failed
    current_step: Step | None = None
    waiting_for: str | None = None  # exec_complete | approval | retry | reclaim
    # "held by <session>", or "claim lost to <session>" after another session took the SD over:
    # no handoff starts until the `reclaim` update claims it again.
    claim: str | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    retries_used: dict[str, int] = Field(default_factory=dict)
    last_rejection: str | None = None
    # How many workflow runs this lifecycle has used (it continues as new during long waits).
    runs: int = 1


class ApprovalInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approver: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=5000)


class RetryInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=5000)


class ReclaimInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=5000)


class MessageAck(BaseModel):
    accepted: bool
    step: Step | None
    detail: str
