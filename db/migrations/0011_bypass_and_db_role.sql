-- Issue 20 item 1: who moved an SD, said by the database itself.
--
-- db_role: the database login that wrote the row (`session_user`). A SECURITY DEFINER function
-- runs as its owner (current_user), but session_user stays the login that called it, so the
-- column default records the caller whatever function wrote the row. Rows written before this
-- migration keep NULL (unknown): a default computed now would name the migrating role.
-- actor: who a bypass (fn_bypass_completion) says made it; NULL for the orchestrator's rows,
-- whose declared actor is their session_id and metadata.workflow_id.
ALTER TABLE sd_transition_audit ADD COLUMN db_role text, ADD COLUMN actor text;
ALTER TABLE sd_transition_audit ALTER COLUMN db_role SET DEFAULT session_user;
ALTER TABLE sd_phase_handoffs ADD COLUMN db_role text, ADD COLUMN actor text;
ALTER TABLE sd_phase_handoffs ALTER COLUMN db_role SET DEFAULT session_user;
ALTER TABLE sd_changes ADD COLUMN db_role text;
ALTER TABLE sd_changes ALTER COLUMN db_role SET DEFAULT session_user;
ALTER TABLE sd_exec_reports ADD COLUMN db_role text;
ALTER TABLE sd_exec_reports ALTER COLUMN db_role SET DEFAULT session_user;

-- A bypass is audited like a transition, under LEO's own name for it (BYPASS-COMPLETION is a
-- handoff type of sd_phase_handoffs since 0001).
ALTER TABLE sd_transition_audit DROP CONSTRAINT sd_transition_audit_transition_type_check;
ALTER TABLE sd_transition_audit ADD CONSTRAINT sd_transition_audit_transition_type_check
    CHECK (transition_type IN ('LEAD_TO_PLAN', 'PLAN_TO_EXEC', 'EXEC_TO_PLAN', 'PLAN_TO_LEAD',
                               'LEAD_FINAL_APPROVAL', 'BYPASS_COMPLETION'));
-- A bypass record names who asked for it and why.
ALTER TABLE sd_phase_handoffs ADD CONSTRAINT sd_phase_handoffs_bypass_actor_check
    CHECK (handoff_type <> 'BYPASS-COMPLETION' OR (actor IS NOT NULL AND rejection_reason IS NULL
                                                   AND validation_passed IS NULL));
