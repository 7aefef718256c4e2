"""The PLAN-TO-LEAD handoff workflow. PLAN hands the verified SD to LEAD: EXEC_COMPLETE -> pending_approval LEAD_FINAL."""

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
    name=HandoffType.PLAN_TO_LEAD.value,
    failure_exception_types=[ValidationError],
    sandboxed=HANDOFF_SANDBOXED,
)
class PlanToLeadWorkflow(HandoffWorkflowBase):
    handoff_type = HandoffType.PLAN_TO_LEAD

    @workflow.run
    async def run(self, request: HandoffInput) -> HandoffResult:
        return await self._run(request)
