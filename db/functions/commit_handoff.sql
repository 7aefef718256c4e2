-- Issue 13: the commit step in one statement. Records every sub-agent result of the handoff
-- attempt and applies the recorded verdict (the atomic transition, or the rejection record) in
-- the same transaction, so that the results and the decision they justify are atomic together.
-- Results are idempotent on their key (a retried commit records nothing twice); a transient
-- conflict raised by the transition rolls the results back with it.

-- Records results given as a JSON array of objects (idempotency_key, reuse_key, code, name,
-- verdict, confidence, critical_issues, warnings, recommendations, detailed_analysis,
-- execution_time, justification, conditions, metadata). Returns how many rows were new.
CREATE OR REPLACE FUNCTION leo_record_sub_agent_results(
    p_sd_id text, p_phase text, p_results jsonb)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_count integer;
BEGIN
    IF p_results IS NULL OR jsonb_typeof(p_results) = 'null' THEN
        RETURN 0;
    END IF;
    IF jsonb_typeof(p_results) <> 'array' THEN
        RAISE EXCEPTION 'p_sub_agent_results must be a JSON array' USING ERRCODE = '22023';
    END IF;
    INSERT INTO sub_agent_execution_results (
        idempotency_key, reuse_key, sd_id, sub_agent_code, sub_agent_name, phase, verdict,
        confidence, critical_issues, warnings, recommendations, detailed_analysis,
        execution_time, justification, conditions, metadata)
    SELECT r.idempotency_key, r.reuse_key, p_sd_id, r.code, r.name, p_phase, r.verdict,
           r.confidence, coalesce(r.critical_issues, '[]'), coalesce(r.warnings, '[]'),
           coalesce(r.recommendations, '[]'), coalesce(r.detailed_analysis, ''),
           coalesce(r.execution_time, 0), r.justification, r.conditions,
           coalesce(r.metadata, '{}')
    FROM jsonb_to_recordset(p_results) AS r(
        idempotency_key text, reuse_key text, code text, name text, verdict text,
        confidence integer, critical_issues jsonb, warnings jsonb, recommendations jsonb,
        detailed_analysis text, execution_time numeric, justification text, conditions jsonb,
        metadata jsonb)
    ON CONFLICT (idempotency_key) DO NOTHING;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END $$;

CREATE OR REPLACE FUNCTION fn_commit_handoff(
    p_handoff_type text, p_sd_id text, p_accepted boolean, p_phase text,
    p_sub_agent_results jsonb, p_prd_id text DEFAULT NULL, p_session_id text DEFAULT NULL,
    p_transition_context jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_sd_id  text;
    v_result jsonb;
BEGIN
    IF p_accepted IS NULL THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_accepted must be true or false');
    END IF;
    IF NOT p_accepted THEN
        v_result := fn_record_handoff_rejection(p_sd_id, p_handoff_type, p_session_id,
                                                p_transition_context);
    ELSE
        v_result := CASE p_handoff_type
            WHEN 'LEAD-TO-PLAN' THEN fn_atomic_lead_to_plan_transition(
                p_sd_id, p_prd_id, p_session_id, p_transition_context)
            WHEN 'PLAN-TO-EXEC' THEN fn_atomic_plan_to_exec_transition(
                p_sd_id, p_prd_id, p_session_id, p_transition_context)
            WHEN 'EXEC-TO-PLAN' THEN fn_atomic_exec_to_plan_transition(
                p_sd_id, p_prd_id, p_session_id, p_transition_context)
            WHEN 'PLAN-TO-LEAD' THEN fn_atomic_plan_to_lead_transition(
                p_sd_id, p_prd_id, p_session_id, p_transition_context)
            WHEN 'LEAD-FINAL-APPROVAL' THEN fn_atomic_lead_final_approval_transition(
                p_sd_id, p_prd_id, p_session_id, p_transition_context)
            ELSE leo_refusal('INVALID_INPUT', format('unknown handoff type %s', p_handoff_type))
        END;
    END IF;
    -- Results are facts about agents that ran: recorded whatever the decision's outcome, but
    -- only for an SD that exists (a refusal for a missing SD records nothing).
    v_sd_id := leo_resolve_sd_id(p_sd_id);
    IF v_sd_id IS NOT NULL THEN
        PERFORM leo_record_sub_agent_results(v_sd_id, p_phase, p_sub_agent_results);
    END IF;
    RETURN v_result;
END $$;
