-- The audit trail is append-only, for every role including the owner: a transition writes its
-- audit row once (completed, or failed after its steps rolled back) and nothing may change or
-- remove it afterwards. UPDATE and DELETE of any row, and TRUNCATE, are refused.
CREATE FUNCTION leo_audit_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'sd_transition_audit is append-only: % is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit rows are written once by the transition functions and never changed';
END $$;

CREATE TRIGGER sd_transition_audit_append_only
    BEFORE UPDATE OR DELETE ON sd_transition_audit
    FOR EACH ROW EXECUTE FUNCTION leo_audit_append_only();
CREATE TRIGGER sd_transition_audit_no_truncate
    BEFORE TRUNCATE ON sd_transition_audit
    FOR EACH STATEMENT EXECUTE FUNCTION leo_audit_append_only();

-- Rows are inserted once, completed or failed: there is no in_progress row any more.
DROP FUNCTION IF EXISTS leo_transition_audit_start(jsonb);

-- The temporary schema last, also for the trigger function of 0001 (SECURITY DEFINER entry
-- points call into functions that read tables; a caller's temp table must not shadow them).
ALTER FUNCTION leo_sd_defaults() SET search_path = pg_catalog, public, pg_temp;
