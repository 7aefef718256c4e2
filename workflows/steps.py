"""What every handoff step shares: search attribute keys, retry policies, timeouts, patch ids,
and the failure a refused step ends the workflow with. Workflow code: deterministic, no I/O."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from leo.domain import search_attributes
    from leo.domain.refusals import DOMAIN_ERROR_TYPES

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


# Patch id (issue 19): the bare floor's shape. The snapshot step is a local activity in the
# first workflow task, which schedules every agent; the gates and the commit are one local
# activity in the task that sees the last agent's result, and that task completes the workflow.
# "Decided once" rests on the database (fn_commit_handoff is idempotent on the request id). The
# only patch marker of such a run: the patch ids above are not asked for.
BARE_FLOOR_SHAPE = "bare-floor-shape"
# How many times a handoff judges again by itself when the SD changed while it ran
# (VERSION_CONFLICT at commit time), before it fails with that refusal.
MAX_REJUDGES = 3


def failure_type(err: ActivityError | ApplicationError) -> str | None:
    """The refusal code (or other error type) an activity failed with, if it says one."""
    cause = err.cause if isinstance(err, ActivityError) else err
    return cause.type if isinstance(cause, ApplicationError) else None


# The five handoff workflows run outside the workflow sandbox (issue 19, R5). Measured with
# py-spy on 20 handoffs (docs/performance.md): the sandbox's own work, the `exec` of each
# activation and the set-up of each new instance, was about a seventh of the worker's samples.
# What the sandbox would catch at run time (a call that is not deterministic) the replay tests
# catch before a release: every history in tests/workflows/histories/ replays against the code,
# and tests/workflows/test_handoff_determinism.py keeps clocks, randomness and I/O out of these
# modules. The lifecycle workflow keeps the sandbox.
HANDOFF_SANDBOXED = False
