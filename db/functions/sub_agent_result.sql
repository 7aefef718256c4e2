-- Records one sub-agent result, once: idempotent on p_idempotency_key (a retried activity, a
-- crashed worker or a replay finds the row instead of writing a second one). Returns the new
-- row's id, or NULL when the key was already recorded. Runs as its owner, so the worker role
-- needs EXECUTE on it and no INSERT on the table.
CREATE OR REPLACE FUNCTION fn_record_sub_agent_result(
    p_idempotency_key text, p_sd_id text, p_sub_agent_code text, p_sub_agent_name text,
    p_phase text, p_verdict text, p_confidence integer, p_critical_issues jsonb,
    p_warnings jsonb, p_recommendations jsonb, p_detailed_analysis text,
    p_execution_time numeric, p_justification text, p_conditions jsonb, p_metadata jsonb)
RETURNS uuid LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    INSERT INTO sub_agent_execution_results (
        idempotency_key, sd_id, sub_agent_code, sub_agent_name, phase, verdict, confidence,
        critical_issues, warnings, recommendations, detailed_analysis, execution_time,
        justification, conditions, metadata)
    VALUES (p_idempotency_key, p_sd_id, p_sub_agent_code, p_sub_agent_name, p_phase, p_verdict,
            p_confidence, p_critical_issues, p_warnings, p_recommendations, p_detailed_analysis,
            p_execution_time, p_justification, p_conditions, p_metadata)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id;
$$;
