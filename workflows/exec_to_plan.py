"""The EXEC-TO-PLAN handoff workflow. EXEC reports the work done; PLAN verifies: active EXEC -> active EXEC_COMPLETE."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from leo.domain.handoff_messages import HandoffInput, HandoffResult
    from leo.domain.handoffs import HandoffType
    from workflows.pipeline import HandoffWorkflowBase


@workflow.defn(name=HandoffType.EXEC_TO_PLAN.value)
class ExecToPlanWorkflow(HandoffWorkflowBase):
    handoff_type = HandoffType.EXEC_TO_PLAN

    @workflow.run
    async def run(self, request: HandoffInput) -> HandoffResult:
        return await self._run(request)
