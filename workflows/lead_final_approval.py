"""The LEAD-FINAL-APPROVAL handoff workflow. LEAD approves and closes the SD: pending_approval LEAD_FINAL -> completed COMPLETED."""

from __future__ import annotations

from pydantic import ValidationError
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from leo.domain.handoff_messages import HandoffInput, HandoffResult
    from leo.domain.handoffs import HandoffType
    from workflows.pipeline import HandoffWorkflowBase
    from workflows.steps import HANDOFF_SANDBOXED


# A result it cannot decode (pydantic ValidationError) fails this handoff, naming the field,
# instead of retrying its task (review F8).
@workflow.defn(
    name=HandoffType.LEAD_FINAL_APPROVAL.value,
    failure_exception_types=[ValidationError],
    sandboxed=HANDOFF_SANDBOXED,
)
class LeadFinalApprovalWorkflow(HandoffWorkflowBase):
    handoff_type = HandoffType.LEAD_FINAL_APPROVAL

    @workflow.run
    async def run(self, request: HandoffInput) -> HandoffResult:
        return await self._run(request)
