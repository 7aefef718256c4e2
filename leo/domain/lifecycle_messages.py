"""The payloads of SD-LIFECYCLE: its input, status and step records, and its updates' inputs
(EXEC's report, LEAD's approval, retry) and acknowledgement.

These are wire formats kept in recorded histories: fields are only ever added, with defaults.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from leo.domain.budget import EXEC_REPORT_COMMITS_BYTES, json_size
from leo.domain.handoff_messages import HandoffOptions
from leo.domain.handoffs import Step
from leo.domain.storable import StorableModel

# The longest `deadline_seconds` a lifecycle accepts: one year.
MAX_DEADLINE_SECONDS = 365 * 24 * 3600


class ExecReport(StorableModel):
    """What EXEC sends with `report_exec_complete`. Free-form evidence goes in `evidence`;
    any other unknown field is refused, so a misspelt `test_results` cannot vanish."""

    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=1, max_length=5000)
    # story_key -> e2e test status (passing, failing, skipped, ...)
    test_results: dict[str, str] = Field(default_factory=dict)
    commits: list[str] = Field(default_factory=list, max_length=500)
    retrospective: dict[str, Any] | None = None
    evidence: dict[str, Any] = Field(default_factory=dict)

    @field_validator("commits")
    @classmethod
    def _commits_fit_the_sd_metadata(cls, commits: list[str]) -> list[str]:
        # They are appended to the SD's metadata: see budget.EXEC_REPORT_COMMITS_BYTES.
        size = json_size(commits)
        if size > EXEC_REPORT_COMMITS_BYTES:
            raise ValueError(
                f"`commits` take {size:,} bytes; a report may add at most "
                f"{EXEC_REPORT_COMMITS_BYTES:,} (half of the SD's metadata limit, where they "
                "are kept): send fewer"
            )
        return commits


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


class ApprovalInput(StorableModel):
    model_config = ConfigDict(extra="forbid")

    approver: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=5000)


class LifecycleResume(BaseModel):
    """What a lifecycle carries into its next run when it continues as new during a long wait
    (its history would otherwise grow without bound while it heartbeats its claim).

    The next run resumes at `current_step`, whatever it was waiting for, with every message
    this run accepted: EXEC's report, LEAD's decision and a requested retry."""

    steps: list[StepRecord] = Field(default_factory=list)
    retries_used: dict[str, int] = Field(default_factory=dict)
    last_rejection: str | None = None
    current_step: Step | None = None
    waiting_for: str | None = None
    deadline: datetime | None = None
    runs: int = 1
    claim_lost_to: str | None = None
    exec_report: ExecReport | None = None
    decision: str | None = None  # approved | rejected_by_lead, with `approval`
    approval: ApprovalInput | None = None
    retry_requested: bool = False
    steps_omitted: int = 0


class LifecycleInput(StorableModel):
    model_config = ConfigDict(extra="forbid")  # inputs refuse unknown fields: see HandoffOptions

    sd_id: str = Field(min_length=1, max_length=200)
    # The session that holds the SD's claim; defaults to one named after the lifecycle.
    session_id: str | None = Field(default=None, min_length=1, max_length=200)
    options: HandoffOptions = Field(default_factory=HandoffOptions)
    # Re-runs allowed per handoff after a rejection, each one asked for with `retry`.
    max_retries: int = Field(default=3, ge=0, le=100)
    # Overall deadline for the whole chain, waits included; None waits as long as it takes.
    # At most a year: a larger one would overflow the workflow's clock arithmetic.
    deadline_seconds: float | None = Field(default=None, gt=0, le=MAX_DEADLINE_SECONDS)
    # Below the 300 s after which a claim counts as stale.
    claim_heartbeat_seconds: float = Field(default=120, ge=0.1, lt=300)
    # Set only by the lifecycle itself when it continues as new; a client that sets it is
    # refused (INVALID_INPUT).
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
    # Older rejection records dropped to keep the status bounded (bounded_steps).
    steps_omitted: int = 0


class RetryInput(StorableModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=5000)


class ReclaimInput(StorableModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=5000)


class MessageAck(BaseModel):
    accepted: bool
    step: Step | None
    detail: str


# The lifecycle's step records stay bounded (a handoff may be rejected and retried many times,
# and a lost claim adds a record without using a retry): the status is the query result, the
# continue-as-new input and the final result, all within the payload budget.
# Rejections kept per handoff step: the newest ones; older ones are counted in steps_omitted.
MAX_REJECTIONS_KEPT = 5
# Characters of issues kept on each step's newest record, and on the older ones.
NEWEST_ISSUES_CHARS = 8 * 1024
OLDER_ISSUES_CHARS = 512


def trim_issues(issues: tuple[str, ...], budget: int) -> tuple[str, ...]:
    """The first issues that fit in `budget` characters, the last one cut, then a count of
    the ones left out."""
    kept: list[str] = []
    used = 0
    for index, issue in enumerate(issues):
        room = budget - used
        if room <= 0:
            kept.append(f"... {len(issues) - index} more issue(s) not kept")
            break
        text = issue if len(issue) <= room else issue[:room] + "..."
        kept.append(text)
        used += len(text)
    return tuple(kept)


def bounded_steps(steps: list[StepRecord]) -> tuple[list[StepRecord], int]:
    """`steps` with at most MAX_REJECTIONS_KEPT rejections per step (the newest) and trimmed
    issues (the newest record of each step keeps the most), and how many records were dropped.
    Accepted, reported and decided records are always kept: there is one of each per step."""
    rejections: dict[Step, int] = {}
    for record in steps:
        if record.outcome == "rejected":
            rejections[record.step] = rejections.get(record.step, 0) + 1
    newest = {record.step: index for index, record in enumerate(steps)}
    kept: list[StepRecord] = []
    dropped = 0
    for index, record in enumerate(steps):
        if record.outcome == "rejected" and rejections[record.step] > MAX_REJECTIONS_KEPT:
            rejections[record.step] -= 1
            dropped += 1
            continue
        budget = NEWEST_ISSUES_CHARS if newest[record.step] == index else OLDER_ISSUES_CHARS
        issues = trim_issues(record.issues, budget)
        kept.append(
            record if issues == record.issues else record.model_copy(update={"issues": issues})
        )
    return kept, dropped
