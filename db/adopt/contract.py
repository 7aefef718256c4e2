"""What LEO relies on in an EHG_Engineer database it adopts: tables, columns, CHECK values,
triggers and functions. `leo db adopt --check` compares a database with this; the schema
fingerprint `leo db adopt` stores (and `leo doctor` re-checks) is taken over these objects.

Type names are PostgreSQL's `format_type` spellings with any length modifier dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TEXT = frozenset({"text", "character varying"})
JSONB = frozenset({"jsonb"})
INT = frozenset({"integer", "bigint", "smallint"})
BOOL = frozenset({"boolean"})
UUID = frozenset({"uuid"})
TIME = frozenset({"timestamp without time zone", "timestamp with time zone"})
SCORE = frozenset({"integer", "numeric", "smallint", "real", "double precision"})


@dataclass(frozen=True)
class TableContract:
    name: str
    # column -> the types LEO can read and write it as
    columns: dict[str, frozenset[str]]
    # column -> values LEO writes into it, which the table's CHECKs must allow
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # their triggers that decide outcomes (reported; a missing one changes what LEO sees)
    triggers: tuple[str, ...] = ()
    # LEO writes rows here (else it only reads)
    writes: bool = False


def cols(**by_kind: str) -> dict[str, frozenset[str]]:
    """Columns by the kind of type they must have: cols(text="id title", jsonb="metadata")."""
    kinds = {"text": TEXT, "jsonb": JSONB, "int": INT, "bool": BOOL, "uuid": UUID,
             "time": TIME, "score": SCORE}  # fmt: skip
    return {name: kinds[kind] for kind, names in by_kind.items() for name in names.split()}


TABLES: tuple[TableContract, ...] = (
    TableContract(
        "strategic_directives_v2",
        cols(
            text="id sd_key title description scope rationale category sd_type status "
            "current_phase priority intensity_level parent_sd_id relationship_type "
            "target_application active_session_id claiming_session_id",
            uuid="uuid_id",
            jsonb="success_criteria success_metrics metadata",
            int="progress_percentage transition_version",
            bool="is_working_on",
            time="completion_date created_at updated_at",
        ),
        values={
            "status": ("in_progress", "active", "pending_approval", "completed"),
            "current_phase": ("PLAN_PRD", "EXEC", "EXEC_COMPLETE", "LEAD_FINAL", "COMPLETED"),
        },
        triggers=(
            "enforce_handoff_trigger",
            "enforce_progress_trigger",
            "trg_enforce_sd_quality_advancement",
            "auto_calculate_progress_trigger",
        ),
        writes=True,
    ),
    TableContract(
        "product_requirements_v2",
        cols(
            text="id sd_id directive_id title status phase executive_summary",
            jsonb="functional_requirements test_scenarios metadata",
            int="progress",
            time="created_at updated_at",
        ),
        values={"status": ("in_progress", "verification", "completed")},
        writes=True,
    ),
    TableContract(
        "user_stories",
        cols(
            uuid="id",
            text="story_key sd_id prd_id title status validation_status e2e_test_status "
            "e2e_test_path implementation_status completed_by",
            jsonb="acceptance_criteria",
            time="completed_at created_at updated_at",
        ),
        values={"status": ("completed",), "validation_status": ("validated",)},
        writes=True,
    ),
    TableContract(
        "sd_phase_handoffs",
        cols(
            uuid="id",
            text="sd_id handoff_type from_phase to_phase status rejection_reason created_by "
            "executive_summary deliverables_manifest key_decisions known_issues "
            "resource_utilization action_items completeness_report",
            score="validation_score",
            bool="validation_passed",
            jsonb="validation_details metadata",
            time="accepted_at rejected_at created_at",
        ),
        values={
            "status": ("accepted", "rejected"),
            "handoff_type": (
                "LEAD-TO-PLAN",
                "PLAN-TO-EXEC",
                "EXEC-TO-PLAN",
                "PLAN-TO-LEAD",
                "LEAD-FINAL-APPROVAL",
            ),
        },
        triggers=(
            "enforce_handoff_creation",
            "trg_enforce_is_working_on_handoffs",
            "validate_handoff_trigger",
        ),
        writes=True,
    ),
    TableContract(
        "sd_transition_audit",
        cols(
            uuid="id sd_id",
            text="transition_type session_id request_id status",
            jsonb="pre_state post_state error_details",
            time="started_at completed_at",
        ),
        values={"status": ("completed", "failed")},
        writes=True,
    ),
    TableContract(
        "claude_sessions",
        cols(
            text="session_id sd_key track status released_reason",
            time="heartbeat_at claimed_at released_at",
            jsonb="metadata",
        ),
        triggers=("sync_is_working_on_trigger",),
        writes=True,
    ),
    TableContract(
        "sub_agent_execution_results",
        cols(
            uuid="id",
            text="sd_id sub_agent_code sub_agent_name phase verdict detailed_analysis "
            "justification source",
            int="confidence",
            score="execution_time",
            jsonb="critical_issues warnings recommendations conditions metadata",
            time="created_at",
        ),
        values={"verdict": ("PASS", "FAIL", "BLOCKED", "CONDITIONAL_PASS", "WARNING", "ERROR")},
        triggers=("trg_reject_control_chars",),
        writes=True,
    ),
    TableContract(
        "leo_sub_agents",
        cols(text="code name", int="priority", bool="active", jsonb="metadata"),
    ),
    TableContract("retrospectives", cols(text="sd_id", int="quality_score", time="created_at")),
)


@dataclass(frozen=True)
class FunctionContract:
    name: str
    # the argument names a call uses, in order: their own RPC shape, which must still resolve
    arguments: tuple[str, ...]
    why: str
    fix: str
    required: bool = True


FUNCTIONS: tuple[FunctionContract, ...] = (
    FunctionContract(
        "claim_sd",
        ("p_sd_id", "p_session_id", "p_track", "p_force_takeover"),
        "LEO claims SDs through their claim function, so both systems see one claim",
        "restore their public.claim_sd(p_sd_id, p_session_id, p_track, p_force_takeover, ...)",
    ),
    FunctionContract(
        "release_sd",
        ("p_session_id", "p_reason"),
        "LEO releases claims through their release function",
        "restore their public.release_sd(p_session_id, p_reason)",
    ),
    FunctionContract(
        "handoff_actor_policy",
        ("p_created_by",),
        "their handoff triggers ask it whether LEO's actor may create handoffs",
        "restore their public.handoff_actor_policy(p_created_by)",
    ),
    FunctionContract(
        "fn_atomic_exec_to_plan_transition",
        ("p_sd_id", "p_prd_id", "p_session_id", "p_request_id"),
        "their RPC; coexistence is checked so that adoption never makes it ambiguous",
        "",
        required=False,
    ),
    FunctionContract(
        "fn_atomic_lead_to_plan_transition",
        ("p_sd_id", "p_session_id", "p_request_id"),
        "their RPC; coexistence is checked so that adoption never makes it ambiguous",
        "",
        required=False,
    ),
)

# What LEO's own code calls, by name and named arguments, with search_path = leo, public.
# A public function of the same name that accepts the same named arguments with other types
# would make those calls ambiguous; with the same types, the one in schema leo wins.
LEO_CALLS: dict[str, tuple[str, ...]] = {
    "claim_sd": ("p_sd_id", "p_session_id"),
    "release_sd": ("p_session_id", "p_reason"),
    "heartbeat_sd_claim": ("p_session_id",),
    "fn_commit_handoff": (
        "p_handoff_type",
        "p_sd_id",
        "p_accepted",
        "p_phase",
        "p_sub_agent_results",
        "p_prd_id",
        "p_session_id",
        "p_transition_context",
    ),
    "fn_record_handoff_rejection": (
        "p_sd_id",
        "p_handoff_type",
        "p_session_id",
        "p_transition_context",
    ),
    "fn_atomic_lead_to_plan_transition": (
        "p_sd_id",
        "p_prd_id",
        "p_session_id",
        "p_transition_context",
    ),
    "fn_atomic_plan_to_exec_transition": (
        "p_sd_id",
        "p_prd_id",
        "p_session_id",
        "p_transition_context",
    ),
    "fn_atomic_exec_to_plan_transition": (
        "p_sd_id",
        "p_prd_id",
        "p_session_id",
        "p_transition_context",
    ),
    "fn_atomic_plan_to_lead_transition": (
        "p_sd_id",
        "p_prd_id",
        "p_session_id",
        "p_transition_context",
    ),
    "fn_atomic_lead_final_approval_transition": (
        "p_sd_id",
        "p_prd_id",
        "p_session_id",
        "p_transition_context",
    ),
}

# Calls LEO makes in a second form: the claim heartbeat keyed by SD and session (issue 17),
# beside the session-only form that lifecycles recorded before it still call.
LEO_MORE_CALLS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("heartbeat_sd_claim", ("p_session_id", "p_sd_id")),
)

# Native LEO's bookkeeping: a database that has it is a native LEO database, not theirs.
NATIVE_BOOKKEEPING = "leo_schema_migrations"
SCHEMA = "leo"
