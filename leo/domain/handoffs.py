"""The five handoff types, the LEO phase each belongs to, and the SD-LIFECYCLE steps."""

from __future__ import annotations

from enum import StrEnum


class HandoffType(StrEnum):
    LEAD_TO_PLAN = "LEAD-TO-PLAN"
    PLAN_TO_EXEC = "PLAN-TO-EXEC"
    EXEC_TO_PLAN = "EXEC-TO-PLAN"
    PLAN_TO_LEAD = "PLAN-TO-LEAD"
    LEAD_FINAL_APPROVAL = "LEAD-FINAL-APPROVAL"

    @property
    def snake(self) -> str:
        return self.value.lower().replace("-", "_")

    @property
    def function_name(self) -> str:
        return f"fn_atomic_{self.snake}_transition"


# The LEO phase each handoff's sub-agents belong to (docs/leo-domain.md 3.2).
HANDOFF_PHASE: dict[HandoffType, str] = {
    HandoffType.LEAD_TO_PLAN: "LEAD_PRE_APPROVAL",
    HandoffType.PLAN_TO_EXEC: "PLAN_PRD",
    HandoffType.EXEC_TO_PLAN: "PLAN_VERIFY",
    HandoffType.PLAN_TO_LEAD: "LEAD_FINAL",
    HandoffType.LEAD_FINAL_APPROVAL: "LEAD_FINAL",
}


def workflow_id_for(handoff: HandoffType, canonical_sd_id: str) -> str:
    """The workflow id of a handoff: its idempotency key for starts."""
    return f"{handoff.value}:{canonical_sd_id}"


# The workflow type (and id prefix) of the parent workflow that chains the five handoffs.
LIFECYCLE = "SD-LIFECYCLE"


class Step(StrEnum):
    """SD-LIFECYCLE's steps: the five handoffs (same values as HandoffType) and two waits."""

    LEAD_TO_PLAN = HandoffType.LEAD_TO_PLAN.value
    PLAN_TO_EXEC = HandoffType.PLAN_TO_EXEC.value
    EXEC_WORK = "EXEC-WORK"
    EXEC_TO_PLAN = HandoffType.EXEC_TO_PLAN.value
    PLAN_TO_LEAD = HandoffType.PLAN_TO_LEAD.value
    LEAD_APPROVAL = "LEAD-APPROVAL"
    LEAD_FINAL_APPROVAL = HandoffType.LEAD_FINAL_APPROVAL.value


STEPS = list(Step)
# Where a lifecycle started on an SD in this phase picks up.
START_STEP: dict[str, Step | None] = {
    "LEAD": Step.LEAD_TO_PLAN,
    "LEAD_APPROVAL": Step.LEAD_TO_PLAN,
    "PLAN_PRD": Step.PLAN_TO_EXEC,
    "EXEC": Step.EXEC_WORK,
    "EXEC_COMPLETE": Step.PLAN_TO_LEAD,
    "PLAN_VERIFICATION": Step.PLAN_TO_LEAD,
    "LEAD_FINAL": Step.LEAD_APPROVAL,
    "LEAD_FINAL_APPROVAL": Step.LEAD_APPROVAL,
    "COMPLETED": None,
}


def lifecycle_workflow_id(canonical_sd_id: str) -> str:
    return f"{LIFECYCLE}:{canonical_sd_id}"


def default_session_id(canonical_sd_id: str) -> str:
    """The session a lifecycle claims the SD for when the caller names none."""
    return f"lifecycle:{canonical_sd_id}"
