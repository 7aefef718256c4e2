"""The handoff workflows by handoff type: what workers register and clients start.

Kept out of `workflows/__init__.py` on purpose: the sandbox runs a package's `__init__` for every
new workflow instance, so the package itself imports nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from leo.domain.handoff_messages import HandoffInput, HandoffResult
from leo.domain.handoffs import HandoffType
from workflows.exec_to_plan import ExecToPlanWorkflow
from workflows.lead_final_approval import LeadFinalApprovalWorkflow
from workflows.lead_to_plan import LeadToPlanWorkflow
from workflows.plan_to_exec import PlanToExecWorkflow
from workflows.plan_to_lead import PlanToLeadWorkflow

HANDOFF_WORKFLOWS: dict[HandoffType, type[Any]] = {
    LeadToPlanWorkflow.handoff_type: LeadToPlanWorkflow,
    PlanToExecWorkflow.handoff_type: PlanToExecWorkflow,
    ExecToPlanWorkflow.handoff_type: ExecToPlanWorkflow,
    PlanToLeadWorkflow.handoff_type: PlanToLeadWorkflow,
    LeadFinalApprovalWorkflow.handoff_type: LeadFinalApprovalWorkflow,
}

# The typed entry point of each handoff workflow, for client.start_workflow(...).
HANDOFF_RUN: dict[HandoffType, Callable[[Any, HandoffInput], Awaitable[HandoffResult]]] = {
    LeadToPlanWorkflow.handoff_type: LeadToPlanWorkflow.run,
    PlanToExecWorkflow.handoff_type: PlanToExecWorkflow.run,
    ExecToPlanWorkflow.handoff_type: ExecToPlanWorkflow.run,
    PlanToLeadWorkflow.handoff_type: PlanToLeadWorkflow.run,
    LeadFinalApprovalWorkflow.handoff_type: LeadFinalApprovalWorkflow.run,
}
