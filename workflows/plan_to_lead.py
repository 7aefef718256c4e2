"""The PLAN-TO-LEAD handoff workflow. PLAN hands the verified SD to LEAD: EXEC_COMPLETE -> pending_approval LEAD_FINAL."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from leo.domain.handoff_messages import HandoffInput, HandoffResult
    from leo.domain.handoffs import HandoffType
    from workflows.pipeline import HandoffWorkflowBase


@workflow.defn(name=HandoffType.PLAN_TO_LEAD.value)
class PlanToLeadWorkflow(HandoffWorkflowBase):
    handoff_type = HandoffType.PLAN_TO_LEAD

    @workflow.run
    async def run(self, request: HandoffInput) -> HandoffResult:
        return await self._run(request)
