"""The handoff pipeline before issue 19, for histories recorded with it (patches lean-handoff,
local-database-steps, bounded-agent-input, decide-once, and none): snapshot step -> agents ->
the gates' verdict recorded in history -> the verdict applied by a regular activity. New runs
take the bare floor's shape (workflows/pipeline.py). Workflow code: deterministic, no I/O.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.agent_inputs import PreparedHandoff, SubAgentRecord
    from activities.handoff import (
        CommitHandoffInput,
        CommitHandoffResult,
        HandoffActivities,
        HandoffDecision,
        LoadSnapshotInput,
    )
    from leo.domain.handoff_messages import HandoffInput, HandoffProgress, HandoffResult
    from leo.domain.handoffs import HandoffType, workflow_id_for
    from leo.domain.refusals import FailureType
    from leo.domain.snapshot import HandoffSnapshot
    from leo.domain.verdicts import SubAgentResult
    from leo.infra import metrics
    from workflows.agent_results import rejection_message
    from workflows.outcome import DECIDE_ONCE, accepted_result, apply_decision, handoff_result
    from workflows.steps import (
        COMMIT_RETRY,
        HANDOFF_TYPE,
        LEAN_HANDOFF,
        LOCAL_DATABASE_STEPS,
        SD_ID,
        SD_TYPE,
        SNAPSHOT_RETRY,
        domain_failure,
    )


class HandoffRun(Protocol):
    """What this pipeline uses of the workflow instance (workflows/pipeline.py)."""

    handoff_type: HandoffType
    _progress: HandoffProgress

    async def _run_sub_agents(
        self, snapshot: HandoffSnapshot, request: HandoffInput, prepared: PreparedHandoff | None
    ) -> list[SubAgentResult]: ...

    def _finish(self, result: HandoffResult) -> HandoffResult: ...

    def _records(
        self, prepared: PreparedHandoff | None, results: list[SubAgentResult]
    ) -> list[SubAgentRecord] | None: ...


async def run_legacy(wf: HandoffRun, request: HandoffInput) -> HandoffResult:
    """The pipeline of histories recorded before the patch bare-floor-shape, kept as it was so
    that they replay: a snapshot step, the agents, the verdict recorded, then applied."""
    info = workflow.info()
    load = LoadSnapshotInput(
        handoff_type=wf.handoff_type,
        sd_id=request.sd_id,
        session_id=request.session_id,
        extra_sub_agents=request.options.extra_sub_agents,
        attempt=info.workflow_start_time.isoformat(),
    )
    prepared: PreparedHandoff | None = None
    if workflow.patched(LEAN_HANDOFF):
        prepared = await database_step(
            HandoffActivities.prepare_handoff,
            load,
            start_to_close=timedelta(seconds=15),
            retry_policy=SNAPSHOT_RETRY,
            summary=f"load snapshot of {request.sd_id}",
        )
        snapshot = prepared.snapshot
    else:
        snapshot = await database_step(
            HandoffActivities.load_handoff_snapshot,
            load.model_copy(update={"attempt": None}),
            start_to_close=timedelta(seconds=15),
            retry_policy=SNAPSHOT_RETRY,
            summary=f"load snapshot of {request.sd_id}",
        )
    expected_id = workflow_id_for(wf.handoff_type, snapshot.sd.id)
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
            HANDOFF_TYPE.value_set(wf.handoff_type.value),
        ]
    )
    if snapshot.already_accepted is not None and workflow.patched(DECIDE_ONCE):
        # Accepted by an earlier run: return that result; nothing runs again.
        return wf._finish(accepted_result(wf.handoff_type, snapshot, snapshot.already_accepted))
    wf._progress = HandoffProgress(stage="sub_agents", sd_key=snapshot.sd.sd_key)
    sub_agents = await wf._run_sub_agents(snapshot, request, prepared)

    wf._progress = wf._progress.model_copy(update={"stage": "committing"})
    commit_input = CommitHandoffInput(
        handoff_type=wf.handoff_type,
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
        decision: HandoffDecision = await database_step(
            HandoffActivities.evaluate_handoff_gates,
            commit_input,
            start_to_close=timedelta(seconds=30),
            retry_policy=SNAPSHOT_RETRY,
            summary=f"{wf.handoff_type.value} gates",
        )
        try:
            commit = await apply_decision(
                wf.handoff_type,
                commit_input,
                decision,
                COMMIT_RETRY,
                records=wf._records(prepared, sub_agents),
            )
        except ActivityError as err:
            raise domain_failure(err) from err
    else:
        commit = await database_step(
            HandoffActivities.commit_handoff,
            commit_input,
            start_to_close=timedelta(seconds=30),
            retry_policy=COMMIT_RETRY,
            summary=f"gates + {wf.handoff_type.value} transition",
        )

    result = wf._finish(handoff_result(wf.handoff_type, snapshot, sub_agents, commit))
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


async def database_step(
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
