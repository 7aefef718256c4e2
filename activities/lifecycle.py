"""Activities of the SD-LIFECYCLE workflow: where the SD is, its session claim, EXEC's report,
LEAD's decision."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db import lifecycle as db_lifecycle
from leo.domain.budget import BudgetExceededError, check_report_commits
from leo.domain.handoffs import HandoffType
from leo.domain.lifecycle_messages import ExecReport
from leo.domain.refusals import RefusalCode


class AcceptedHandoff(BaseModel):
    model_config = ConfigDict(frozen=True)

    handoff_type: HandoffType
    validation_score: float | None
    handoff_id: str
    accepted_at: datetime | None


class BypassRecord(BaseModel):
    """A BYPASS-COMPLETION: who completed the SD without its gates, as which database role."""

    model_config = ConfigDict(frozen=True)

    handoff_id: str
    actor: str | None
    db_role: str | None
    reason: str | None
    from_phase: str
    accepted_at: datetime | None


class LoadLifecycleStateInput(BaseModel):
    sd_id: str


class LifecycleState(BaseModel):
    """Where an SD stands, so that a lifecycle can resume from there."""

    model_config = ConfigDict(frozen=True)

    sd_id: str
    sd_key: str
    sd_type: str
    status: str
    current_phase: str
    transition_version: int
    accepted: list[AcceptedHandoff] = Field(default_factory=list)
    bypass: BypassRecord | None = None


class ClaimInput(BaseModel):
    sd_id: str
    session_id: str


class ReleaseInput(BaseModel):
    session_id: str
    reason: str = "completed"
    # For a heartbeat: the SD the claim must be on (a session that moved to another SD has
    # lost this one). Absent in histories recorded before issue 17: the session's claim only.
    sd_id: str | None = None


class ClaimResult(BaseModel):
    success: bool
    code: str
    sd_id: str | None = None
    took_over_from: str | None = None
    error: str | None = None
    # On a refused heartbeat: the session that holds the SD now, if any.
    claimed_by: str | None = None


class RecordExecReportInput(BaseModel):
    sd_id: str
    session_id: str | None
    request_id: str
    report: ExecReport


class RecordExecReportResult(BaseModel):
    report_id: str
    idempotent_hit: bool


class RecordLeadDecisionInput(BaseModel):
    sd_id: str
    session_id: str | None
    request_id: str
    decision: str  # approved | rejected
    approver: str
    reason: str = ""


class RecordLeadDecisionResult(BaseModel):
    decision_id: str
    idempotent_hit: bool


class LifecycleActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name="load_lifecycle_state")
    async def load_lifecycle_state(self, request: LoadLifecycleStateInput) -> LifecycleState:
        found = await db_lifecycle.read_sd_state(self._pool, request.sd_id)
        if found is None:
            raise ApplicationError(
                f"SD not found: {request.sd_id}", type=RefusalCode.SD_NOT_FOUND, non_retryable=True
            )
        row, accepted = found
        bypass = await db_lifecycle.read_bypass(self._pool, row["id"])
        return LifecycleState(
            sd_id=row["id"],
            sd_key=row["sd_key"],
            sd_type=row["sd_type"],
            status=row["status"],
            current_phase=row["current_phase"],
            transition_version=row["transition_version"],
            accepted=[AcceptedHandoff.model_validate(dict(r)) for r in accepted],
            bypass=None if bypass is None else BypassRecord.model_validate(dict(bypass)),
        )

    @activity.defn(name="claim_sd")
    async def claim_sd(self, request: ClaimInput) -> ClaimResult:
        raw = await db_lifecycle.claim_sd(self._pool, request.sd_id, request.session_id)
        result = ClaimResult.model_validate(raw)
        if not result.success:
            raise ApplicationError(
                raw.get("error", result.code), raw, type=result.code, non_retryable=True
            )
        return result

    @activity.defn(name="heartbeat_sd_claim")
    async def heartbeat_sd_claim(self, request: ReleaseInput) -> ClaimResult:
        raw = await db_lifecycle.heartbeat_sd_claim(self._pool, request.session_id, request.sd_id)
        return ClaimResult.model_validate(raw)

    @activity.defn(name="release_sd")
    async def release_sd(self, request: ReleaseInput) -> ClaimResult:
        raw = await db_lifecycle.release_sd(self._pool, request.session_id, request.reason)
        return ClaimResult.model_validate(raw)

    @activity.defn(name="record_exec_report")
    async def record_exec_report(self, request: RecordExecReportInput) -> RecordExecReportResult:
        report = request.report
        evidence = {
            **report.evidence,
            "test_results": report.test_results,
            "commits": report.commits,
        }
        if report.retrospective is not None:
            evidence["retrospective"] = report.retrospective
        if report.commits:  # refused before anything is recorded: see check_report_commits
            metadata = await db_lifecycle.read_metadata_for_report(
                self._pool, request.sd_id, request.request_id
            )
            try:
                if metadata is not None:  # None: a retry of a recorded report, or no such SD
                    check_report_commits(metadata, report.commits)
            except BudgetExceededError as exc:
                raise ApplicationError(str(exc), type=exc.code, non_retryable=True) from None
        try:
            raw = await db_lifecycle.record_exec_report(
                self._pool,
                sd_id=request.sd_id,
                session_id=request.session_id,
                request_id=request.request_id,
                summary=report.summary,
                evidence=evidence,
            )
        except asyncpg.DataError as exc:  # the same on every retry: refused, not retried
            raise ApplicationError(
                f"the database cannot store this report: {exc}",
                type=RefusalCode.INVALID_INPUT,
                non_retryable=True,
            ) from None
        if not raw.get("success"):
            raise ApplicationError(
                raw.get("error", "report refused"), raw, type=raw.get("code"), non_retryable=True
            )
        return RecordExecReportResult(
            report_id=str(raw["report_id"]), idempotent_hit=raw["idempotent_hit"]
        )

    @activity.defn(name="record_lead_decision")
    async def record_lead_decision(
        self, request: RecordLeadDecisionInput
    ) -> RecordLeadDecisionResult:
        raw = await db_lifecycle.record_lead_decision(
            self._pool,
            sd_id=request.sd_id,
            session_id=request.session_id,
            request_id=request.request_id,
            decision=request.decision,
            approver=request.approver,
            reason=request.reason,
        )
        if not raw.get("success"):
            raise ApplicationError(
                raw.get("error", "decision refused"), raw, type=raw.get("code"), non_retryable=True
            )
        return RecordLeadDecisionResult(
            decision_id=str(raw["decision_id"]), idempotent_hit=raw["idempotent_hit"]
        )
