"""Why a handoff did not apply: the transition functions' refusal codes, which of them a retry
can fix, and the failure types workflows end with. Each list is defined here once."""

from __future__ import annotations

from enum import StrEnum


class RefusalCode(StrEnum):
    """Stable codes a transition function returns when it applies nothing."""

    OK = "OK"
    SD_NOT_FOUND = "SD_NOT_FOUND"
    CONCURRENT_LOCK = "CONCURRENT_LOCK"
    VERSION_CONFLICT = "VERSION_CONFLICT"
    INVALID_PHASE = "INVALID_PHASE"
    CLAIMED_BY_OTHER_SESSION = "CLAIMED_BY_OTHER_SESSION"
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_PRD_STATUS = "INVALID_PRD_STATUS"
    TRANSITION_FAILED = "TRANSITION_FAILED"
    # Claims (db/functions/claims.sql): a heartbeat or release without a live claim.
    NO_ACTIVE_CLAIM = "NO_ACTIVE_CLAIM"
    # fn_update_sd: a field only transitions change (current_phase, status, ...).
    TRANSITION_OWNED_FIELD = "TRANSITION_OWNED_FIELD"


class UpdateRefusal(StrEnum):
    """`ApplicationError.type` of an SD-LIFECYCLE update refused by its validator."""

    NOT_WAITING_FOR_EXEC_REPORT = "NOT_WAITING_FOR_EXEC_REPORT"
    NOT_WAITING_FOR_APPROVAL = "NOT_WAITING_FOR_APPROVAL"
    NOT_WAITING_FOR_RETRY = "NOT_WAITING_FOR_RETRY"
    EXEC_REPORT_ALREADY_RECEIVED = "EXEC_REPORT_ALREADY_RECEIVED"
    ALREADY_DECIDED = "ALREADY_DECIDED"
    # `reclaim` while the lifecycle still holds (or never had) its claim.
    CLAIM_NOT_LOST = "CLAIM_NOT_LOST"
    # Any update sent while the lifecycle is continuing as new: nothing was done; send it again
    # (LifecycleClient does, after a moment).
    CONTINUING_AS_NEW = "LIFECYCLE_CONTINUING_AS_NEW"


class FailureType(StrEnum):
    """`ApplicationError.type` of the failures our workflows end with, besides refusal codes."""

    # A handoff whose gates did not pass; the typed HandoffResult rides in the details.
    HANDOFF_REJECTED = "HandoffRejected"
    # A handoff or lifecycle started under an id other than its canonical one.
    WRONG_WORKFLOW_ID = "WRONG_WORKFLOW_ID"
    # SD-LIFECYCLE's own endings.
    LEAD_REJECTED = "LeadRejected"
    LIFECYCLE_EXPIRED = "LifecycleExpired"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    # The recorder did not record a rejection the gates decided; the message says why.
    REJECTION_NOT_RECORDED = "REJECTION_NOT_RECORDED"
    # A deadlock (40P01) or serialization failure (40001) inside a transition: nothing was
    # applied, and the apply step is retried.
    TRANSIENT_CONFLICT = "TRANSIENT_CONFLICT"
    # Over the payload budget (leo/domain/budget.py), refused before anything runs or applies.
    SD_TOO_LARGE = "SD_TOO_LARGE"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"


# Transient: the SD is locked by another transition right now; retried with backoff and jitter.
RETRYABLE_REFUSALS = frozenset({RefusalCode.CONCURRENT_LOCK})

# Refusals that no retry can fix: they end the workflow with that code as its failure type.
NON_RETRYABLE_REFUSALS: tuple[RefusalCode, ...] = (
    RefusalCode.SD_NOT_FOUND,
    RefusalCode.VERSION_CONFLICT,
    RefusalCode.INVALID_PHASE,
    RefusalCode.CLAIMED_BY_OTHER_SESSION,
    RefusalCode.INVALID_INPUT,
    RefusalCode.INVALID_PRD_STATUS,
    RefusalCode.TRANSITION_FAILED,
)

# What the dry run before a handoff stops on: the request cannot apply now, so no agent should
# run. VERSION_CONFLICT and TRANSITION_FAILED cannot come from a dry run without an expected
# version or steps; CONCURRENT_LOCK is retried.
PREFLIGHT_REFUSALS = frozenset(
    {
        RefusalCode.CONCURRENT_LOCK,
        RefusalCode.SD_NOT_FOUND,
        RefusalCode.INVALID_PHASE,
        RefusalCode.CLAIMED_BY_OTHER_SESSION,
        RefusalCode.INVALID_INPUT,
        RefusalCode.INVALID_PRD_STATUS,
    }
)

# Failure types that mean "this request cannot apply" (the caller's problem), as opposed to an
# environment failure: activity retry policies list them as non-retryable, and the CLI maps them
# to its "refused" exit code.
DOMAIN_ERROR_TYPES: tuple[str, ...] = (
    *(code.value for code in NON_RETRYABLE_REFUSALS),
    FailureType.WRONG_WORKFLOW_ID.value,
    FailureType.SD_TOO_LARGE.value,
    FailureType.PAYLOAD_TOO_LARGE.value,
)

# The lifecycle's own activities (claim, release, EXEC report) stop on these.
LIFECYCLE_ACTIVITY_ERROR_TYPES: tuple[str, ...] = (
    RefusalCode.SD_NOT_FOUND.value,
    RefusalCode.CLAIMED_BY_OTHER_SESSION.value,
    RefusalCode.INVALID_INPUT.value,
)

# Every failure type a client can see (a failed run, a refused update), in any SDK: documented
# in docs/temporal-cli.md. They are decisions and refusals, so they carry no stack trace
# (leo/infra/failures.py).
FAILURE_TYPES: frozenset[str] = frozenset(
    {code.value for code in RefusalCode if code is not RefusalCode.OK}
    | {kind.value for kind in UpdateRefusal}
    | {kind.value for kind in FailureType}
)
