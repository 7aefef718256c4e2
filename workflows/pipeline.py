"""The one handoff pipeline all five workflow types share, in the bare floor's shape (issue 19).

The server sees what a workflow of parallel activities alone would make it see:
1. the first workflow task runs the snapshot step as a local activity (the snapshot, each
   agent's keys, the results already recorded, the built-in rules' verdicts) and schedules
   every agent that can start;
2. the agents, the only activities (dependants start when their `depends_on` are done);
3. the workflow task that sees the last agent's result runs the gates and the commit as one
   local activity and completes the workflow.
"Decided once" rests on the database: the gates are a pure function of what history holds (the
snapshot and the results), and the commit is idempotent on the handoff's request id, so a
repeat reports the verdict first committed. Histories recorded before run the old pipeline
(workflows/legacy_pipeline.py). Workflow code here is deterministic and does no I/O.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
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
        DecideAndCommitInput,
        HandoffActivities,
        LoadSnapshotInput,
    )
    from activities.sub_agents import RunSubAgentInput, SubAgentActivities
    from leo.domain.handoff_messages import (
        HandoffInput,
        HandoffProgress,
        HandoffResult,
    )
    from leo.domain.handoffs import HandoffType, workflow_id_for
    from leo.domain.refusals import FailureType, RefusalCode
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
    from workflows.legacy_pipeline import run_legacy
    from workflows.outcome import accepted_result, carry_over, handoff_result
    from workflows.steps import (
        BACKSTOP_GRACE_SECONDS,
        BARE_FLOOR_SHAPE,
        BOUNDED_AGENT_INPUT,
        COMMIT_RETRY,
        HANDOFF_TYPE,
        HEARTBEAT_TIMEOUT,
        MAX_REJUDGES,
        OUTCOME,
        SCORE,
        SD_ID,
        SD_TYPE,
        SNAPSHOT_RETRY,
        SUB_AGENT_RETRY,
        domain_failure,
        failure_type,
    )


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
            if workflow.patched(BARE_FLOOR_SHAPE):
                result = await self._run_handoff(request)
            else:
                result = await run_legacy(self, request)
        except (FailureError, asyncio.CancelledError) as err:
            metrics.record_handoff(self.handoff_type.value, metrics.handoff_outcome(err))
            raise
        metrics.record_handoff(self.handoff_type.value, result.outcome)
        return result

    async def _run_handoff(self, request: HandoffInput) -> HandoffResult:
        info = workflow.info()
        attempt = info.workflow_start_time.isoformat()
        carried: dict[str, tuple[str | None, SubAgentResult]] = {}
        for round_ in range(MAX_REJUDGES + 1):
            # A round after the first judges again on the SD's new version: a new snapshot,
            # new keys; an agent whose input did not change keeps its result.
            suffix = f"#{round_}" if round_ else ""
            prepared = await self._local_step(
                HandoffActivities.prepare_handoff,
                LoadSnapshotInput(
                    handoff_type=self.handoff_type,
                    sd_id=request.sd_id,
                    session_id=request.session_id,
                    extra_sub_agents=request.options.extra_sub_agents,
                    attempt=attempt + suffix,
                ),
                schedule_to_close=timedelta(seconds=60),
                retry_policy=SNAPSHOT_RETRY,
                summary=f"load snapshot of {request.sd_id}",
            )
            snapshot = prepared.snapshot
            if round_ == 0:
                self._check_workflow_id(snapshot)
            if snapshot.already_accepted is not None:
                # Accepted by an earlier run: return that result; nothing runs again.
                return self._finish(
                    accepted_result(self.handoff_type, snapshot, snapshot.already_accepted),
                    snapshot,
                )
            prepared = carry_over(prepared, carried)
            self._progress = HandoffProgress(stage="sub_agents", sd_key=snapshot.sd.sd_key)
            sub_agents = await self._run_sub_agents(snapshot, request, prepared, floor=True)
            self._progress = self._progress.model_copy(update={"stage": "committing"})
            request_id = f"{info.workflow_id}/{info.run_id}" + (f"/{round_}" if round_ else "")
            try:
                commit: CommitHandoffResult = await self._local_step(
                    HandoffActivities.decide_and_commit_handoff,
                    DecideAndCommitInput(
                        commit=CommitHandoffInput(
                            handoff_type=self.handoff_type,
                            snapshot=snapshot,
                            sub_agents=sub_agents,
                            # One request id per judgement: a repeat of the commit is a no-op.
                            request_id=request_id,
                            session_id=request.session_id,
                            metadata={"workflow_id": info.workflow_id, "run_id": info.run_id},
                        ),
                        sub_agent_results=self._records(prepared, sub_agents) or [],
                    ),
                    schedule_to_close=timedelta(seconds=120),
                    retry_policy=COMMIT_RETRY,
                    summary=f"{self.handoff_type.value} gates + commit",
                    refusal_passes=round_ < MAX_REJUDGES,
                )
            except _SdChanged:
                carried = {
                    r.code: (prepared.keys[r.code].reuse_key, r)
                    for r in sub_agents
                    if r.code in prepared.keys and r.ran and r.verdict is not Verdict.ERROR
                }
                continue
            return self._conclude(snapshot, sub_agents, commit)
        raise AssertionError("unreachable: the last round's VERSION_CONFLICT fails the handoff")

    def _conclude(
        self,
        snapshot: HandoffSnapshot,
        sub_agents: list[SubAgentResult],
        commit: CommitHandoffResult,
    ) -> HandoffResult:
        result = self._finish(
            handoff_result(self.handoff_type, snapshot, sub_agents, commit), snapshot
        )
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

    def _check_workflow_id(self, snapshot: HandoffSnapshot) -> None:
        info = workflow.info()
        expected_id = workflow_id_for(self.handoff_type, snapshot.sd.id)
        if info.workflow_id != expected_id:
            # Starts are idempotent only because the id is derived from the canonical SD id.
            raise ApplicationError(
                f"this handoff must run with workflow id {expected_id!r}, not "
                f"{info.workflow_id!r}, so that starting it twice cannot run it twice",
                type=FailureType.WRONG_WORKFLOW_ID,
                non_retryable=True,
            )
        if info.typed_search_attributes.get(SD_ID) is None:
            # Started without them (`temporal workflow start`): findable while it runs.
            workflow.upsert_search_attributes(
                [
                    SD_ID.value_set(snapshot.sd.id),
                    HANDOFF_TYPE.value_set(self.handoff_type.value),
                ]
            )

    async def _local_step(
        self,
        method: Any,
        arg: Any,
        *,
        schedule_to_close: timedelta,
        retry_policy: Any,
        summary: str,
        refusal_passes: bool = False,
    ) -> Any:
        """A database step as a local activity in the current workflow task. Each attempt's
        database calls are bounded by the pool's command timeout (with a start-to-close
        timeout, sdk-core 1.35 panics when a worker shuts down with its timer pending)."""
        try:
            return await workflow.execute_local_activity_method(
                method,
                arg,
                schedule_to_close_timeout=schedule_to_close,
                retry_policy=retry_policy,
                summary=summary,
            )
        except (ActivityError, ApplicationError) as err:
            # A local activity's failure arrives as the ApplicationError it raised.
            if refusal_passes and failure_type(err) == RefusalCode.VERSION_CONFLICT:
                raise _SdChanged() from err
            if isinstance(err, ActivityError):
                raise domain_failure(err) from err
            raise

    def _finish(
        self, result: HandoffResult, snapshot: HandoffSnapshot | None = None
    ) -> HandoffResult:
        # One upsert at the end: with the snapshot (bare floor's shape) the SD's type too.
        workflow.upsert_search_attributes(
            ([SD_TYPE.value_set(snapshot.sd.sd_type)] if snapshot is not None else [])
            + [OUTCOME.value_set(result.outcome)]
            + (
                [SCORE.value_set(result.normalized_score)]
                if result.normalized_score is not None
                else []
            )
        )
        workflow.set_current_details(result_details(result))
        self._progress = self._progress.model_copy(update={"stage": "done"})
        return result

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
        self,
        snapshot: HandoffSnapshot,
        request: HandoffInput,
        prepared: PreparedHandoff | None,
        *,
        floor: bool = False,
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
                    key = (
                        prepared.keys[code].idempotency_key
                        if floor and prepared is not None and code in prepared.keys
                        else sub_agent_idempotency_key(
                            snapshot.sd.id, snapshot.phase, code, attempt
                        )
                    )
                    running[code] = asyncio.create_task(
                        self._run_one(
                            spec, snapshot, request, key, lean=prepared is not None, floor=floor
                        )
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
        key: str,
        *,
        lean: bool,
        floor: bool,
    ) -> SubAgentResult:
        if request.options.sub_agent_timeout_seconds is not None:
            spec = spec.model_copy(
                update={"timeout_seconds": request.options.sub_agent_timeout_seconds}
            )
        # Histories recorded before the payload budget sent the whole snapshot to every agent
        # (the bare floor's shape asks for no patch but its own).
        bounded = floor or workflow.patched(BOUNDED_AGENT_INPUT)
        view = agent_view(snapshot, spec) if bounded else snapshot
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


class _SdChanged(Exception):
    """The commit was refused with VERSION_CONFLICT and another round may judge again."""
