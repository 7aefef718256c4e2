"""The EXEC-TO-PLAN handoff workflow. EXEC reports the work done; PLAN verifies: active EXEC -> active EXEC_COMPLETE."""

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
    name=HandoffType.EXEC_TO_PLAN.value,
    failure_exception_types=[ValidationError],
    sandboxed=HANDOFF_SANDBOXED,
)
class ExecToPlanWorkflow(HandoffWorkflowBase):
    handoff_type = HandoffType.EXEC_TO_PLAN

    @workflow.run
    async def run(self, request: HandoffInput) -> HandoffResult:
        return await self._run(request)
