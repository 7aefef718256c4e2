"""What every transition function promises, per handoff, as data for the shared contract tests
(tests/db/test_transition_functions.py); the handoff's own behaviour is tested in
tests/db/test_<handoff>_function.py.

Each function refuses a wrong phase naming what it expected, rolls back everything when any of
its numbered steps fails, is idempotent on the request id, refuses a stale version, an unknown
SD and a session while another holds a live claim, and lets the claim holder through. What
differs per handoff is which rows it needs, its steps and the phase text it expects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.support.db import Fault, record_handoff_faults


@dataclass(frozen=True)
class Contract:
    handoff: str
    # The numbered steps, one injected failure each (in tests/support/db.py's terms).
    faults: tuple[Fault, ...]
    # "expected" of the INVALID_PHASE refusal, and (status, phase) pairs it refuses.
    expected: str
    wrong_phases: tuple[tuple[str, str], ...]
    # Extra `create_sd` arguments per contract test (besides ready_for=handoff).
    fault_rows: dict[str, Any] = field(default_factory=dict)
    idempotency_rows: dict[str, Any] = field(default_factory=dict)
    wrong_phase_rows: dict[str, Any] = field(default_factory=dict)
    foreign_claim_rows: dict[str, Any] = field(default_factory=dict)
    # The caller holds a claim, so the step that releases claims has one to release.
    fault_under_claim: bool = False
    # A successful transition releases every active claim on the SD.
    releases_claims: bool = False


_EXEC_STORIES_DONE = {"user_stories_updated": 2}
_PLAN_STORIES_DONE = {"user_stories_updated": 1}

CONTRACTS: dict[str, Contract] = {
    c.handoff: c
    for c in (
        Contract(
            handoff="LEAD-TO-PLAN",
            faults=(
                Fault("1. Transition SD", "strategic_directives_v2", "UPDATE", "23514", {}),
                *record_handoff_faults("2. Record handoff", {"sd_updated": True}),
            ),
            expected="draft or active / LEAD or LEAD_APPROVAL",
            wrong_phases=(
                ("in_progress", "PLAN_PRD"),
                ("active", "EXEC"),
                ("in_progress", "LEAD"),
                ("completed", "COMPLETED"),
            ),
            fault_rows={"with_prd": True, "stories": [{}]},
        ),
        Contract(
            handoff="PLAN-TO-EXEC",
            faults=(
                Fault("1. Transition PRD", "product_requirements_v2", "UPDATE", "23514", {}),
                Fault(
                    "2. Transition SD",
                    "strategic_directives_v2",
                    "UPDATE",
                    "23503",
                    {"prd_updated": True},
                ),
                *record_handoff_faults(
                    "3. Record handoff", {"prd_updated": True, "sd_updated": True}
                ),
            ),
            expected="in_progress / PLAN_PRD with a PRD",
            wrong_phases=(("draft", "LEAD_APPROVAL"), ("active", "EXEC"), ("active", "PLAN_PRD")),
            fault_rows={"stories": [{}]},
            wrong_phase_rows={"with_prd": True},
        ),
        Contract(
            handoff="EXEC-TO-PLAN",
            faults=(
                Fault("1. Transition user stories", "user_stories", "UPDATE", "23514", {}),
                Fault(
                    "2. Transition PRD",
                    "product_requirements_v2",
                    "UPDATE",
                    "23502",
                    _EXEC_STORIES_DONE,
                ),
                Fault(
                    "3. Transition SD",
                    "strategic_directives_v2",
                    "UPDATE",
                    "22001",
                    {**_EXEC_STORIES_DONE, "prd_updated": True},
                ),
                *record_handoff_faults(
                    "4. Record handoff",
                    {**_EXEC_STORIES_DONE, "prd_updated": True, "sd_updated": True},
                ),
            ),
            expected="active / EXEC",
            wrong_phases=(
                ("in_progress", "PLAN_PRD"),
                ("active", "EXEC_COMPLETE"),
                ("in_progress", "EXEC"),
            ),
            fault_rows={"stories": [{}, {"e2e_test_path": "e2e/x.spec.ts"}]},
            idempotency_rows={"stories": [{}]},
            wrong_phase_rows={"with_prd": True, "stories": [{}]},
            foreign_claim_rows={"stories": [{}]},
        ),
        Contract(
            handoff="PLAN-TO-LEAD",
            faults=(
                Fault("1. Finalize user stories", "user_stories", "UPDATE", "23514", {}),
                Fault(
                    "2. Transition PRD",
                    "product_requirements_v2",
                    "UPDATE",
                    "23P01",
                    _PLAN_STORIES_DONE,
                ),
                Fault(
                    "3. Transition SD",
                    "strategic_directives_v2",
                    "UPDATE",
                    "23503",
                    {**_PLAN_STORIES_DONE, "prd_updated": True},
                ),
                *record_handoff_faults(
                    "4. Record handoff",
                    {**_PLAN_STORIES_DONE, "prd_updated": True, "sd_updated": True},
                ),
            ),
            expected="active / EXEC_COMPLETE with the PRD in verification",
            wrong_phases=(
                ("active", "EXEC"),
                ("pending_approval", "LEAD_FINAL"),
                ("in_progress", "EXEC_COMPLETE"),
            ),
            fault_rows={"stories": [{"status": "testing"}]},
            idempotency_rows={"stories": [{"status": "testing"}]},
            wrong_phase_rows={"with_prd": True, "prd_status": "verification"},
            foreign_claim_rows={"stories": [{}]},
        ),
        Contract(
            handoff="LEAD-FINAL-APPROVAL",
            faults=(
                Fault("1. Complete SD", "strategic_directives_v2", "UPDATE", "23514", {}),
                Fault(
                    "2. Release session claim",
                    "claude_sessions",
                    "UPDATE",
                    "55P03",
                    {"sd_updated": True},
                ),
                *record_handoff_faults(
                    "3. Record handoff", {"sd_updated": True, "claims_released": 1}
                ),
            ),
            expected="pending_approval / LEAD_FINAL",
            wrong_phases=(
                ("active", "EXEC_COMPLETE"),
                ("pending_approval", "LEAD_APPROVAL"),
                ("completed", "LEAD_FINAL"),
                ("cancelled", "CANCELLED"),
            ),
            wrong_phase_rows={"with_prd": True},
            fault_under_claim=True,
            releases_claims=True,
        ),
    )
}
