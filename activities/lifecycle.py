"""Activities of the SD-LIFECYCLE workflow: where the SD is, its session claim, EXEC's report."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from leo.domain.handoffs import HandoffType
from leo.domain.lifecycle_messages import ExecReport

if TYPE_CHECKING:
    import asyncpg


class AcceptedHandoff(BaseModel):
    model_config = ConfigDict(frozen=True)

    handoff_type: HandoffType
    validation_score: float | None
    handoff_id: str
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


class ClaimInput(BaseModel):
    sd_id: str
    session_id: str


class ReleaseInput(BaseModel):
    session_id: str
    reason: str = "completed"


class ClaimResult(BaseModel):
    success: bool
    code: str
    sd_id: str | None = None
    took_over_from: str | None = None


class RecordExecReportInput(BaseModel):
    sd_id: str
    session_id: str | None
    request_id: str
    report: ExecReport


class RecordExecReportResult(BaseModel):
    report_id: str
    idempotent_hit: bool


class LifecycleActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name="load_lifecycle_state")
    async def load_lifecycle_state(self, request: LoadLifecycleStateInput) -> LifecycleState:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT id, sd_key, sd_type, status, current_phase, transition_version "
                "FROM strategic_directives_v2 WHERE id = leo_resolve_sd_id($1)",
                request.sd_id,
            )
            if row is None:
                raise ApplicationError(
                    f"SD not found: {request.sd_id}", type="SD_NOT_FOUND", non_retryable=True
                )
            accepted = await conn.fetch(
                "SELECT DISTINCT ON (handoff_type) handoff_type, validation_score::float8 AS validation_score, "
                "id::text AS handoff_id, accepted_at FROM sd_phase_handoffs "
                "WHERE sd_id = $1 AND status = 'accepted' ORDER BY handoff_type, created_at DESC",
                row["id"],
            )
        return LifecycleState(
            sd_id=row["id"],
            sd_key=row["sd_key"],
            sd_type=row["sd_type"],
            status=row["status"],
            current_phase=row["current_phase"],
            transition_version=row["transition_version"],
            accepted=[AcceptedHandoff.model_validate(dict(r)) for r in accepted],
        )

    @activity.defn(name="claim_sd")
    async def claim_sd(self, request: ClaimInput) -> ClaimResult:
        raw = await self._pool.fetchval(
            "SELECT claim_sd(p_sd_id => $1, p_session_id => $2)", request.sd_id, request.session_id
        )
        result = ClaimResult.model_validate(raw)
        if not result.success:
            raise ApplicationError(
                raw.get("error", result.code), raw, type=result.code, non_retryable=True
            )
        return result

    @activity.defn(name="heartbeat_sd_claim")
    async def heartbeat_sd_claim(self, request: ReleaseInput) -> ClaimResult:
        raw = await self._pool.fetchval(
            "SELECT heartbeat_sd_claim(p_session_id => $1)", request.session_id
        )
        return ClaimResult.model_validate(raw)

    @activity.defn(name="release_sd")
    async def release_sd(self, request: ReleaseInput) -> ClaimResult:
        raw = await self._pool.fetchval(
            "SELECT release_sd(p_session_id => $1, p_reason => $2)",
            request.session_id,
            request.reason,
        )
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
        raw = await self._pool.fetchval(
            "SELECT fn_record_exec_report(p_sd_id => $1, p_session_id => $2, p_request_id => $3, "
            "p_summary => $4, p_evidence => $5)",
            request.sd_id,
            request.session_id,
            request.request_id,
            report.summary,
            evidence,
        )
        if not raw.get("success"):
            raise ApplicationError(
                raw.get("error", "report refused"), raw, type=raw.get("code"), non_retryable=True
            )
        return RecordExecReportResult(
            report_id=str(raw["report_id"]), idempotent_hit=raw["idempotent_hit"]
        )
