-- Records a handoff that its gates rejected: an sd_phase_handoffs row with status 'rejected',
-- the real (unrounded) score and the reason. The SD is not touched. Idempotent on the
-- context's request_id, so a retried activity records one row.
CREATE OR REPLACE FUNCTION fn_record_handoff_rejection(
    p_sd_id text, p_handoff_type text, p_session_id text DEFAULT NULL,
    p_transition_context jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_sd_id  text;
    v_id     uuid;
    v_gate   jsonb;
    v_phases text[];
    v_score  numeric;
BEGIN
    v_phases := CASE p_handoff_type
        WHEN 'LEAD-TO-PLAN' THEN ARRAY['LEAD', 'PLAN']
        WHEN 'PLAN-TO-EXEC' THEN ARRAY['PLAN', 'EXEC']
        WHEN 'EXEC-TO-PLAN' THEN ARRAY['EXEC', 'PLAN']
        WHEN 'PLAN-TO-LEAD' THEN ARRAY['PLAN', 'LEAD']
        WHEN 'LEAD-FINAL-APPROVAL' THEN ARRAY['LEAD', 'COMPLETED']
    END;
    IF v_phases IS NULL THEN
        RETURN leo_refusal('INVALID_INPUT', format('unknown handoff type: %s', p_handoff_type));
    END IF;
    IF p_transition_context IS NULL OR jsonb_typeof(p_transition_context) <> 'object'
       OR jsonb_typeof(p_transition_context -> 'request_id') IS DISTINCT FROM 'string'
       OR btrim(p_transition_context ->> 'request_id') = '' THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_transition_context must be an object with a request_id');
    END IF;
    IF length(p_transition_context ->> 'request_id') > 300 THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_transition_context.request_id must be at most 300 characters');
    END IF;
    IF p_transition_context ? 'metadata' AND jsonb_typeof(p_transition_context -> 'metadata') <> 'object' THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_transition_context.metadata must be an object');
    END IF;
    IF pg_column_size(p_transition_context -> 'gate_summary') > 102400 THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_transition_context.gate_summary is larger than 100 KB');
    END IF;
    v_gate := coalesce(p_transition_context -> 'gate_summary', '{}');
    IF jsonb_typeof(v_gate) <> 'object' THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_transition_context.gate_summary must be an object');
    END IF;
    IF jsonb_typeof(v_gate -> 'normalized_score') = 'number' THEN
        v_score := least(greatest((v_gate ->> 'normalized_score')::numeric, 0), 100);
    END IF;
    v_sd_id := leo_resolve_sd_id(p_sd_id);
    IF v_sd_id IS NULL THEN
        RETURN leo_refusal('SD_NOT_FOUND', format('SD not found: %s', p_sd_id),
                           jsonb_build_object('sd_id', p_sd_id));
    END IF;

    INSERT INTO sd_phase_handoffs (
        sd_id, handoff_type, from_phase, to_phase, status, validation_score, validation_passed,
        validation_details, metadata, request_id, session_id, rejection_reason, rejected_at)
    VALUES (
        v_sd_id, p_handoff_type, v_phases[1], v_phases[2], 'rejected', v_score, false, v_gate,
        coalesce(p_transition_context -> 'metadata', '{}'), p_transition_context ->> 'request_id',
        p_session_id, coalesce(p_transition_context ->> 'rejection_reason', 'gates did not pass'), now())
    ON CONFLICT (request_id) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        -- Only a rejection recorded by this same request counts as "already recorded": a row
        -- with another status (an accepted transition under this request id) is not one.
        SELECT id INTO v_id FROM sd_phase_handoffs WHERE request_id = p_transition_context ->> 'request_id'
            AND sd_id = v_sd_id AND handoff_type = p_handoff_type AND status = 'rejected';
        IF v_id IS NULL THEN
            RETURN leo_refusal('INVALID_INPUT', format(
                'request_id %s was already used for another SD, handoff type or outcome (%s)',
                p_transition_context ->> 'request_id',
                (SELECT format('%s %s on %s', handoff_type, status, sd_id) FROM sd_phase_handoffs
                 WHERE request_id = p_transition_context ->> 'request_id')));
        END IF;
        RETURN jsonb_build_object('success', true, 'code', 'OK', 'handoff_id', v_id,
                                  'sd_id', v_sd_id, 'idempotent_hit', true);
    END IF;
    RETURN jsonb_build_object('success', true, 'code', 'OK', 'handoff_id', v_id,
                              'sd_id', v_sd_id, 'idempotent_hit', false);
END $$;
