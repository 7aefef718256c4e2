"""The one handoff pipeline all five workflow types share.

load snapshot -> sub-agents (parallel, in `depends_on` order) -> the gates' verdict (recorded)
-> the verdict applied (atomic transition or rejection record). Snapshot and verdict are local
activities, so the server sees two rounds of activities per handoff: that is the latency.
Workflow code here is deterministic and does no I/O.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.agent_inputs import (
        PreparedHandoff,
        SubAgentRecord,
        record_for,
        sub_agent_idempotency_key,
    )
    from activities.handoff import (
        CommitHandoffInput,
        CommitHandoffResult,
        HandoffActivities,
        HandoffDecision,
        LoadSnapshotInput,
    )
    from activities.sub_agents import RunSubAgentInput, SubAgentActivities
    from leo.domain import search_attributes
    from leo.domain.handoff_messages import (
        HandoffInput,
        HandoffProgress,
        HandoffResult,
    )
    from leo.domain.handoffs import HandoffType, workflow_id_for
    from leo.domain.refusals import DOMAIN_ERROR_TYPES, FailureType
    from leo.domain.snapshot import HandoffSnapshot, SubAgentSpec
    from leo.domain.snapshot_budget import agent_view
    from leo.domain.verdicts import SUCCESSFUL_VERDICTS, SubAgentResult, Verdict
    from leo.infra import metrics
    from workflows.agent_results import (
        activity_failure_result,
        not_run,
        progress_details,
        progress_rows,
        rejection_message,
        result_details,
    )
    from workflows.outcome import DECIDE_ONCE, accepted_result, apply_decision, handoff_result

SD_ID = SearchAttributeKey.for_keyword(search_attributes.SD_ID)
SD_TYPE = SearchAttributeKey.for_keyword(search_attributes.SD_TYPE)
HANDOFF_TYPE = SearchAttributeKey.for_keyword(search_attributes.HANDOFF_TYPE)
OUTCOME = SearchAttributeKey.for_keyword(search_attributes.OUTCOME)
SCORE = SearchAttributeKey.for_float(search_attributes.SCORE)

SNAPSHOT_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=5),
    non_retryable_error_types=list(DOMAIN_ERROR_TYPES),
)
# CONCURRENT_LOCK and TRANSIENT_CONFLICT (a deadlock or serialization failure) are retried
# here with backoff (and jitter, via next_retry_delay).
COMMIT_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=3),
    maximum_attempts=30,
    non_retryable_error_types=list(DOMAIN_ERROR_TYPES),
)
SUB_AGENT_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=5),
)
# Patch id: snapshot and commit run as local activities from this version on.
LOCAL_DATABASE_STEPS = "local-database-steps"
# Patch id: each sub-agent gets its bounded view of the snapshot, not a full copy.
BOUNDED_AGENT_INPUT = "bounded-agent-input"
# Patch id (issue 13): the snapshot step returns each agent's keys, the results already recorded
# or reusable, and the built-in rules' verdicts; agents only run; the commit step records every
# new result in the transaction of the transition or the rejection.
LEAN_HANDOFF = "lean-handoff"
# The activity enforces the agent's own timeout (and reports ERROR); Temporal's start-to-close
# timeout is a backstop a little later, for an agent that blocks the worker's event loop.
BACKSTOP_GRACE_SECONDS = 10
HEARTBEAT_TIMEOUT = timedelta(seconds=5)


def domain_failure(err: ActivityError) -> BaseException:
    """Fail the workflow with the activity's own error type (INVALID_PHASE, ...), so that
    callers and the Web UI see the refusal, not a generic "activity task failed"."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return ApplicationError(cause.message, *cause.details, type=cause.type, non_retryable=True)
    return err


class HandoffWorkflowBase:
    """Shared by the five handoff workflows; each subclass only names its handoff type."""

    handoff_type: HandoffType

    def __init__(self) -> None:
        self._progress = HandoffProgress(stage="loading")

    @workflow.query(name="progress")
    def progress(self) -> HandoffProgress:
        return self._progress

    async def _run(self, request: HandoffInput) -> HandoffResult:
        # Metrics only: replay-safe, no commands. Other exceptions fail the workflow task,
        # which is retried: they are not an outcome.
        try:
            result = await self._run_handoff(request)
        except (FailureError, asyncio.CancelledError) as err:
            metrics.record_handoff(self.handoff_type.value, metrics.handoff_outcome(err))
            raise
        metrics.record_handoff(self.handoff_type.value, result.outcome)
        return result

    async def _run_handoff(self, request: HandoffInput) -> HandoffResult:
        info = workflow.info()
        load = LoadSnapshotInput(
            handoff_type=self.handoff_type,
            sd_id=request.sd_id,
            session_id=request.session_id,
            extra_sub_agents=request.options.extra_sub_agents,
            attempt=info.workflow_start_time.isoformat(),
        )
        prepared: PreparedHandoff | None = None
        if workflow.patched(LEAN_HANDOFF):
            prepared = await self._database_step(
                HandoffActivities.prepare_handoff,
                load,
                start_to_close=timedelta(seconds=15),
                retry_policy=SNAPSHOT_RETRY,
                summary=f"load snapshot of {request.sd_id}",
            )
            snapshot = prepared.snapshot
        else:
            snapshot = await self._database_step(
                HandoffActivities.load_handoff_snapshot,
                load.model_copy(update={"attempt": None}),
                start_to_close=timedelta(seconds=15),
                retry_policy=SNAPSHOT_RETRY,
                summary=f"load snapshot of {request.sd_id}",
            )
        expected_id = workflow_id_for(self.handoff_type, snapshot.sd.id)
        if info.workflow_id != expected_id:
            # Starts are idempotent only because the id is derived from the canonical SD id.
            raise ApplicationError(
                f"this handoff must run with workflow id {expected_id!r}, not {info.workflow_id!r}, "
                "so that starting it twice cannot run it twice",
                type=FailureType.WRONG_WORKFLOW_ID,
                non_retryable=True,
            )
        workflow.upsert_search_attributes(
            [
                SD_ID.value_set(snapshot.sd.id),
                SD_TYPE.value_set(snapshot.sd.sd_type),
                HANDOFF_TYPE.value_set(self.handoff_type.value),
            ]
        )
        if snapshot.already_accepted is not None and workflow.patched(DECIDE_ONCE):
            # Accepted by an earlier run: return that result; nothing runs again.
            return self._finish(
                accepted_result(self.handoff_type, snapshot, snapshot.already_accepted)
            )
        self._progress = HandoffProgress(stage="sub_agents", sd_key=snapshot.sd.sd_key)
        sub_agents = await self._run_sub_agents(snapshot, request, prepared)

        self._progress = self._progress.model_copy(update={"stage": "committing"})
        commit_input = CommitHandoffInput(
            handoff_type=self.handoff_type,
            snapshot=snapshot,
            sub_agents=sub_agents,
            # One request id per handoff attempt: retries of the commit are no-ops.
            request_id=f"{info.workflow_id}/{info.run_id}",
            session_id=request.session_id,
            metadata={"workflow_id": info.workflow_id, "run_id": info.run_id},
        )
        commit: CommitHandoffResult
        if workflow.patched(DECIDE_ONCE):
            # The gates decide once; the decision is recorded before it is applied.
            decision: HandoffDecision = await self._database_step(
                HandoffActivities.evaluate_handoff_gates,
                commit_input,
                start_to_close=timedelta(seconds=30),
                retry_policy=SNAPSHOT_RETRY,
                summary=f"{self.handoff_type.value} gates",
            )
            try:
                commit = await apply_decision(
                    self.handoff_type,
                    commit_input,
                    decision,
                    COMMIT_RETRY,
                    records=self._records(prepared, sub_agents),
                )
            except ActivityError as err:
                raise domain_failure(err) from err
        else:
            commit = await self._database_step(
                HandoffActivities.commit_handoff,
                commit_input,
                start_to_close=timedelta(seconds=30),
                retry_policy=COMMIT_RETRY,
                summary=f"gates + {self.handoff_type.value} transition",
            )

        result = self._finish(handoff_result(self.handoff_type, snapshot, sub_agents, commit))
        if result.normalized_score is not None:  # the gates ran in this run
            metrics.record_gate_score(result.sd_type, result.normalized_score)
        if not result.accepted:
            # A failed run, so that the id may be started again once the cause is fixed
            # (reuse policy AllowDuplicateFailedOnly); the typed result rides in the details.
            # The message is what the Web UI and other SDKs show first: a decision, not a
            # crash (leo.infra.failures strips the stack trace of this type).
            raise ApplicationError(
                rejection_message(result),
                result,
                type=FailureType.HANDOFF_REJECTED,
                non_retryable=True,
            )
        return result

    def _finish(self, result: HandoffResult) -> HandoffResult:
        workflow.upsert_search_attributes(
            [OUTCOME.value_set(result.outcome)]
            + (
                [SCORE.value_set(result.normalized_score)]
                if result.normalized_score is not None
                else []
            )
        )
        workflow.set_current_details(result_details(result))
        self._progress = self._progress.model_copy(update={"stage": "done"})
        return result

    async def _database_step(
        self,
        method: Any,
        arg: BaseModel,
        *,
        start_to_close: timedelta,
        retry_policy: RetryPolicy,
        summary: str,
    ) -> Any:
        """Snapshot and commit are short database calls: run them as local activities, in the
        worker that runs this workflow task, which saves two server round trips per handoff
        (measured: a third of a handoff's fixed cost). Both are idempotent, as local
        activities require. Histories recorded before this change ran them as normal
        activities and replay that way (the patch marker)."""
        try:
            if workflow.patched(LOCAL_DATABASE_STEPS):
                return await workflow.execute_local_activity_method(
                    method,
                    arg,
                    # All attempts together (CONCURRENT_LOCK retries included). Each attempt's
                    # database calls are bounded by the pool's command timeout instead of a
                    # start-to-close timeout: with one, sdk-core 1.35 panics ("receive half not
                    # dropped") when a worker shuts down with its timer still pending.
                    schedule_to_close_timeout=start_to_close * 4,
                    retry_policy=retry_policy,
                    summary=summary,
                )
            return await workflow.execute_activity_method(
                method,
                arg,
                start_to_close_timeout=start_to_close,
                retry_policy=retry_policy,
                summary=summary,
            )
        except ActivityError as err:
            raise domain_failure(err) from err

    def _records(
        self, prepared: PreparedHandoff | None, results: list[SubAgentResult]
    ) -> list[SubAgentRecord] | None:
        """The rows the commit step records: every result that is new in this attempt."""
        if prepared is None:
            return None
        metadata = {"workflow_id": workflow.info().workflow_id, "handoff_type": self.handoff_type}
        rows = (
            record_for(r, prepared.keys[r.code], metadata)
            for r in results
            if r.code in prepared.keys
        )
        return [row for row in rows if row is not None]

    async def _run_sub_agents(
        self, snapshot: HandoffSnapshot, request: HandoffInput, prepared: PreparedHandoff | None
    ) -> list[SubAgentResult]:
        """Start every agent as soon as its `depends_on` are done; a dependant of an agent that
        did not succeed does not run. Agents a dependency names that this handoff does not run
        are not waited for."""
        info = workflow.info()
        attempt = info.workflow_start_time.isoformat()
        specs = {
            s.code: s for s in sorted(snapshot.sub_agents, key=lambda s: (-s.priority, s.code))
        }
        done: dict[str, SubAgentResult] = {}
        for code in snapshot.missing_sub_agents:
            done[code] = SubAgentResult(
                code=code,
                name=code,
                priority=100,
                verdict=Verdict.BLOCKED,
                confidence=0,
                critical_issues=(
                    f"required sub-agent {code} has no executor configured in leo_sub_agents",
                ),
                ran=False,
            )
        running: dict[str, asyncio.Task[SubAgentResult]] = {}
        pending = dict(specs)
        self._publish(specs, done, running)
        while pending or running:
            progressed = True
            while progressed:
                # Again while results that need no run (ready ones, blocked dependants) unblock
                # more agents in this same pass.
                progressed = False
                for code, spec in list(pending.items()):
                    deps = [d for d in spec.depends_on if d in specs]
                    if any(d not in done for d in deps):
                        continue
                    del pending[code]
                    failed = [d for d in deps if done[d].verdict not in SUCCESSFUL_VERDICTS]
                    if failed:
                        reasons = ", ".join(f"{d} ({done[d].verdict.value})" for d in failed)
                        done[code] = not_run(
                            spec, Verdict.BLOCKED, f"not run: dependency did not succeed: {reasons}"
                        )
                        progressed = prepared is not None
                        continue
                    if prepared is not None and code in prepared.ready:
                        # Recorded, reusable, or a built-in rule: no activity.
                        done[code] = prepared.ready[code]
                        progressed = True
                        continue
                    running[code] = asyncio.create_task(
                        self._run_one(spec, snapshot, request, attempt, lean=prepared is not None)
                    )
            if not running:
                # Whatever is left waits on itself: a depends_on cycle.
                for code, spec in pending.items():
                    done[code] = not_run(spec, Verdict.BLOCKED, f"{code} is in a depends_on cycle")
                break
            self._publish(specs, done, running)
            await workflow.wait(list(running.values()), return_when=asyncio.FIRST_COMPLETED)
            for code, task in list(running.items()):
                if task.done():
                    done[code] = task.result()
                    del running[code]
            self._publish(specs, done, running)
        order = [*snapshot.missing_sub_agents, *specs]
        return [done[c] for c in order]

    async def _run_one(
        self,
        spec: SubAgentSpec,
        snapshot: HandoffSnapshot,
        request: HandoffInput,
        attempt: str,
        *,
        lean: bool,
    ) -> SubAgentResult:
        if request.options.sub_agent_timeout_seconds is not None:
            spec = spec.model_copy(
                update={"timeout_seconds": request.options.sub_agent_timeout_seconds}
            )
        key = sub_agent_idempotency_key(snapshot.sd.id, snapshot.phase, spec.code, attempt)
        # Histories recorded before the payload budget sent the whole snapshot to every agent.
        view = agent_view(snapshot, spec) if workflow.patched(BOUNDED_AGENT_INPUT) else snapshot
        try:
            result: SubAgentResult = await workflow.execute_activity_method(
                SubAgentActivities.run_sub_agent,
                RunSubAgentInput(
                    spec=spec,
                    snapshot=view,
                    idempotency_key=key,
                    metadata={"workflow_id": workflow.info().workflow_id},
                    record=not lean,
                ),
                start_to_close_timeout=timedelta(
                    seconds=spec.timeout_seconds + BACKSTOP_GRACE_SECONDS
                ),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                schedule_to_close_timeout=timedelta(
                    seconds=spec.timeout_seconds + BACKSTOP_GRACE_SECONDS + 120
                ),
                retry_policy=SUB_AGENT_RETRY,
                summary=f"{spec.code} sub-agent",
            )
        except ActivityError as err:
            return activity_failure_result(spec, err)
        return result

    def _publish(
        self,
        specs: dict[str, SubAgentSpec],
        done: dict[str, SubAgentResult],
        running: dict[str, Any],
    ) -> None:
        rows = progress_rows(specs, done, running)
        self._progress = self._progress.model_copy(update={"sub_agents": rows})
        # The Web UI shows this panel: "SECURITY sub-agent: PASS (92)" per agent.
        workflow.set_current_details(progress_details(rows))
