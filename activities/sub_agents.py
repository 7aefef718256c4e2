"""The sub-agent activity: run one agent. From issue 13 on it only runs the agent (the commit step
records the result); handoffs started before still record it here, once per attempt."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from temporalio import activity

from activities.agent_inputs import agent_result, result_from_row
from db.sub_agent_results import find_result, insert_result
from leo.domain.budget import AGENT_RESULT_BUDGET_BYTES, json_size
from leo.domain.snapshot import HandoffSnapshot, SubAgentSpec
from leo.domain.verdicts import AgentOutput, SubAgentResult, error_output, fit_result
from leo.infra import metrics, telemetry
from leo.sub_agents.executors import ExecutorConfigError, run_executor

if TYPE_CHECKING:
    import asyncpg

HEARTBEAT_EVERY_SECONDS = 1.0


class RunSubAgentInput(BaseModel):
    spec: SubAgentSpec
    snapshot: HandoffSnapshot
    idempotency_key: str
    metadata: dict[str, Any] = {}
    # False from issue 13 on: the agent only runs; the commit step records its result.
    record: bool = True


async def run_with_deadline(
    spec: SubAgentSpec, snapshot: HandoffSnapshot, run_key: str | None = None
) -> AgentOutput:
    """Run the executor, heartbeating, and cancel it (killing a command's process tree) when
    the agent's timeout passes or Temporal cancels the activity. A timeout is verdict ERROR."""
    task = asyncio.create_task(run_executor(spec, snapshot, run_key))
    deadline = time.monotonic() + spec.timeout_seconds
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return error_output(
                    f"{spec.code} timed out after {spec.timeout_seconds:g} s and was cancelled"
                )
            done, _ = await asyncio.wait({task}, timeout=min(HEARTBEAT_EVERY_SECONDS, remaining))
            if done:
                try:
                    return task.result()
                except ExecutorConfigError as exc:
                    return error_output(str(exc))
                except Exception as exc:
                    return error_output(f"{spec.code} raised {type(exc).__name__}: {exc}")
            activity.heartbeat()
    finally:
        if not task.done():
            # Activity cancelled (workflow cancelled, heartbeat timeout): stop the work too.
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class SubAgentActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name="run_sub_agent")
    async def run_sub_agent(self, request: RunSubAgentInput) -> SubAgentResult:
        # The database row keeps the whole output; the workflow gets the agent's share.
        return fit_result(await self._run_sub_agent(request))

    async def _run_only(self, request: RunSubAgentInput) -> SubAgentResult:
        """The agent's work and nothing else: no database round trip. A result recorded in the
        workflow's history is never asked for again (Temporal does not re-run a completed
        activity); the commit step writes the row with the decision. Only an output over the
        agent's share of the payload budget is recorded here, in full, so that the row keeps
        what the trimmed result in the history cannot."""
        output, elapsed = await self._run_agent(request)
        result = agent_result(request.spec, output, elapsed)
        if json_size(result) <= AGENT_RESULT_BUDGET_BYTES:
            return result
        return await self._record(request, output, elapsed)

    async def _run_sub_agent(self, request: RunSubAgentInput) -> SubAgentResult:
        if not request.record:
            return await self._run_only(request)
        # Histories from before issue 13: the activity records its own row.
        existing = await find_result(self._pool, request.idempotency_key)
        if existing is not None:
            # Recorded by an earlier attempt of this activity: never run the agent twice.
            return result_from_row(request.spec, existing)
        output, elapsed = await self._run_agent(request)
        return await self._record(request, output, elapsed)

    async def _run_agent(self, request: RunSubAgentInput) -> tuple[AgentOutput, float]:
        spec, snapshot = request.spec, request.snapshot
        started = time.monotonic()
        with telemetry.span(
            f"leo.sub_agent {spec.code}",
            {"leo.sub_agent": spec.code, "leo.sd_id": snapshot.sd.id},
        ) as span:
            output = await run_with_deadline(spec, snapshot, request.idempotency_key)
            span.set_attribute("leo.verdict", output.verdict.value)
        elapsed = round(time.monotonic() - started, 3)
        metrics.record_sub_agent(spec.code, output.verdict.value, elapsed)
        return output, elapsed

    async def _record(
        self, request: RunSubAgentInput, output: AgentOutput, elapsed: float
    ) -> SubAgentResult:
        """Insert the row once; when another attempt recorded first, report what it recorded,
        not a second opinion."""
        row_id = await self._insert(request, output, elapsed)
        if row_id is None:
            row = await find_result(self._pool, request.idempotency_key)
            return result_from_row(request.spec, row)
        return agent_result(request.spec, output, elapsed, result_id=str(row_id))

    async def _insert(self, request: RunSubAgentInput, output: AgentOutput, elapsed: float) -> Any:
        spec, snapshot = request.spec, request.snapshot
        return await insert_result(
            self._pool,
            idempotency_key=request.idempotency_key,
            sd_id=snapshot.sd.id,
            code=spec.code,
            name=spec.name,
            phase=snapshot.phase,
            verdict=output.verdict.value,
            confidence=output.confidence,
            critical_issues=output.critical_issues,
            warnings=output.warnings,
            recommendations=output.recommendations,
            detailed_analysis=output.detailed_analysis,
            execution_time=elapsed,
            justification=output.justification,
            conditions=output.conditions,
            metadata={
                **request.metadata,
                "handoff_type": snapshot.handoff_type.value,
                "executor_kind": spec.executor_kind,
                "attempt": activity.info().attempt,
            },
        )
