-- The commit step in one statement. Records every sub-agent result of the handoff attempt and
-- applies the verdict (the atomic transition, or the rejection record) in the same transaction,
-- so that the results and the decision they justify are atomic together: both or neither, for
-- refusals too (a refused verdict leaves its failed audit row beside the result rows).
-- Decided once (issue 19): the first verdict committed under a request id is the one applied,
-- audited and reported; a repeat of the request id returns it and writes nothing, whatever
-- verdict the repeat carries. A transient conflict raised by the transition rolls everything
-- back with it.

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

-- The outcome first committed under a request id for this SD and handoff type, as
-- fn_commit_handoff answered it then (with 'idempotent_hit' true and the stored gate summary),
-- or NULL when nothing was committed under it. 'decision' is accepted, rejected or refused.
CREATE OR REPLACE FUNCTION leo_recorded_commit(
    p_handoff_type text, p_sd_id text, p_request_id text)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_sd_id   text;
    v_audit   sd_transition_audit;
    v_handoff sd_phase_handoffs;
BEGIN
    IF p_request_id IS NULL THEN
        RETURN NULL;
    END IF;
    v_sd_id := leo_resolve_sd_id(p_sd_id);
    IF v_sd_id IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO v_audit FROM sd_transition_audit
    WHERE request_id = p_request_id AND sd_id = v_sd_id
      AND transition_type = replace(p_handoff_type, '-', '_');
    IF FOUND THEN
        RETURN v_audit.result || jsonb_build_object(
            'idempotent_hit', true,
            'decision', CASE WHEN v_audit.status = 'completed' THEN 'accepted' ELSE 'refused' END,
            'gate_summary', (SELECT validation_details FROM sd_phase_handoffs
                             WHERE id = v_audit.handoff_id));
    END IF;
    SELECT * INTO v_handoff FROM sd_phase_handoffs
    WHERE request_id = p_request_id AND sd_id = v_sd_id AND handoff_type = p_handoff_type
      AND status = 'rejected';
    IF FOUND THEN
        RETURN jsonb_build_object('success', true, 'code', 'OK', 'handoff_id', v_handoff.id,
                                  'sd_id', v_sd_id, 'idempotent_hit', true,
                                  'decision', 'rejected',
                                  'gate_summary', v_handoff.validation_details);
    END IF;
    RETURN NULL;
END $$;

-- A verdict the SD's state refused at commit time (it changed while the handoff ran: a newer
-- version, another session's claim, another phase): the failed audit row with LEO's error
-- record, the verdict and its gate summary, so that the refusal exists outside Temporal's
-- history. Returns the refusal with the audit row's id.
CREATE OR REPLACE FUNCTION leo_record_refused_commit(
    p_sd_id text, p_handoff_type text, p_accepted boolean, p_session_id text,
    p_context jsonb, p_refusal jsonb)
RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_audit   uuid := gen_random_uuid();
    v_pre     jsonb := leo_sd_state(p_sd_id);
    v_code    text := p_refusal ->> 'code';
    v_details jsonb;
    v_result  jsonb;
BEGIN
    v_details := jsonb_build_object(
        'error_code', v_code,
        'error_message', p_refusal ->> 'error',
        'error_detail', p_refusal - 'success' - 'code' - 'error' - 'decision',
        'failed_step', 'precondition',
        'pre_state', v_pre,
        'partial_state', '{}'::jsonb,
        'verdict', CASE WHEN p_accepted THEN 'accepted' ELSE 'rejected' END,
        'gate_summary', coalesce(p_context -> 'gate_summary', '{}'::jsonb),
        'recovery_action', CASE v_code
            WHEN 'VERSION_CONFLICT' THEN
                'Nothing was applied: the SD changed while the handoff ran. The handoff judges '
                'it again on the new version by itself (a bounded number of times).'
            WHEN 'CLAIMED_BY_OTHER_SESSION' THEN
                'Nothing was applied: another session holds the SD''s claim. Reclaim it, or wait '
                'for the claim to go stale, then run the handoff again.'
            ELSE
                format('Nothing was applied (%s). Fix the cause, then run the %s handoff again.',
                       v_code, p_handoff_type)
        END);
    v_result := p_refusal || jsonb_build_object('audit_id', v_audit,
                                                'request_id', p_context ->> 'request_id');
    INSERT INTO sd_transition_audit (
        id, sd_id, transition_type, session_id, request_id, pre_state, status, error_details,
        result, completed_at)
    VALUES (
        v_audit, p_sd_id, replace(p_handoff_type, '-', '_'), p_session_id,
        p_context ->> 'request_id', v_pre, 'failed', v_details, v_result, now())
    ON CONFLICT (request_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN p_refusal;  -- a concurrent call with this request id recorded first
    END IF;
    RETURN v_result;
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
    -- Decided once: a request id that committed before returns that first outcome.
    v_result := leo_recorded_commit(p_handoff_type, p_sd_id,
                                    p_transition_context ->> 'request_id');
    IF v_result IS NOT NULL THEN
        RETURN v_result;
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
    v_result := v_result || jsonb_build_object('decision', CASE
        WHEN (v_result ->> 'success')::boolean IS NOT TRUE THEN 'refused'
        WHEN p_accepted THEN 'accepted' ELSE 'rejected' END);
    v_sd_id := leo_resolve_sd_id(p_sd_id);
    IF v_sd_id IS NULL THEN
        RETURN v_result;  -- a refusal for a missing SD records nothing
    END IF;
    -- Refused by the SD's state: the failed audit row, in this transaction.
    IF v_result ->> 'code' IN ('VERSION_CONFLICT', 'CLAIMED_BY_OTHER_SESSION', 'INVALID_PHASE',
                               'INVALID_PRD_STATUS')
       AND NOT v_result ? 'audit_id' THEN
        v_result := leo_record_refused_commit(v_sd_id, p_handoff_type, p_accepted, p_session_id,
                                              p_transition_context, v_result);
    END IF;
    -- Results are facts about agents that ran, recorded with the decision they justify: with
    -- the handoff or audit row this call wrote, or not at all (a retried CONCURRENT_LOCK, a
    -- malformed call).
    IF (v_result ->> 'success')::boolean IS TRUE OR v_result ? 'audit_id' THEN
        PERFORM leo_record_sub_agent_results(v_sd_id, p_phase, p_sub_agent_results);
    END IF;
    RETURN v_result;
END $$;
