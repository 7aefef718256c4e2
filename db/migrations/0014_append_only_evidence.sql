-- Review M3: what the audit trail points at is append-only too, and no role skips the triggers.
--
-- sd_phase_handoffs (the gate summary a transition was accepted on, and every rejection and
-- bypass), sd_changes (content edits), sd_exec_reports (EXEC's reports) and
-- sub_agent_execution_results (the agents' verdicts) are written once by LEO's functions and
-- never changed: UPDATE, DELETE and TRUNCATE are refused for every role, the owner included.
-- ENABLE ALWAYS: the triggers fire under session_replication_role = replica too, which a
-- superuser could otherwise set to skip them. (DDL by the owner, ALTER TABLE or DROP TRIGGER,
-- is not stopped by a trigger; docs/reliability.md says so.)
CREATE FUNCTION leo_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'rows are written once by LEO''s functions and never changed';
END $$;

DO $$
DECLARE
    v_table text;
BEGIN
    FOREACH v_table IN ARRAY ARRAY['sd_phase_handoffs', 'sd_changes', 'sd_exec_reports',
                                   'sub_agent_execution_results'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I '
                       'FOR EACH ROW EXECUTE FUNCTION leo_append_only()',
                       v_table || '_append_only', v_table);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION leo_append_only()',
                       v_table || '_no_truncate', v_table);
        EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', v_table, v_table || '_append_only');
        EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', v_table, v_table || '_no_truncate');
    END LOOP;
END $$;
ALTER TABLE sd_transition_audit ENABLE ALWAYS TRIGGER sd_transition_audit_append_only;
ALTER TABLE sd_transition_audit ENABLE ALWAYS TRIGGER sd_transition_audit_no_truncate;
