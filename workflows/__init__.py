"""The handoff workflows, one module per handoff type, all on one shared pipeline."""

from __future__ import annotations

from workflows.exec_to_plan import ExecToPlanWorkflow
from workflows.lead_final_approval import LeadFinalApprovalWorkflow
from workflows.lead_to_plan import LeadToPlanWorkflow
from workflows.plan_to_exec import PlanToExecWorkflow
from workflows.plan_to_lead import PlanToLeadWorkflow

HANDOFF_WORKFLOWS = {
    LeadToPlanWorkflow.handoff_type: LeadToPlanWorkflow,
    PlanToExecWorkflow.handoff_type: PlanToExecWorkflow,
    ExecToPlanWorkflow.handoff_type: ExecToPlanWorkflow,
    PlanToLeadWorkflow.handoff_type: PlanToLeadWorkflow,
    LeadFinalApprovalWorkflow.handoff_type: LeadFinalApprovalWorkflow,
}

__all__ = [
    "HANDOFF_WORKFLOWS",
    "ExecToPlanWorkflow",
    "LeadFinalApprovalWorkflow",
    "LeadToPlanWorkflow",
    "PlanToExecWorkflow",
    "PlanToLeadWorkflow",
]
