-- Records a handoff that its gates rejected: an sd_phase_handoffs row with status 'rejected',
-- the real (unrounded) score and the reason. The SD is not touched. Idempotent on the
-- context's request_id, so a retried activity records one row. A new rejection passes the
-- same checks as a transition, under the SD's advisory lock: the expected version and the
-- session claim (leo_transition_guard) and the handoff's starting status and phase; a verdict
-- reached on a version the SD has left is refused (VERSION_CONFLICT), not recorded.
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
    v_sd     strategic_directives_v2;
    v_state  jsonb;
    v_refusal jsonb;
    v_from   text;
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
    IF jsonb_typeof(p_transition_context -> 'expected_version') NOT IN ('null') AND NOT (CASE
           WHEN jsonb_typeof(p_transition_context -> 'expected_version') = 'number'
                AND (p_transition_context ->> 'expected_version') ~ '^[0-9]{1,9}$'
           THEN (p_transition_context ->> 'expected_version')::integer >= 1 ELSE false END) THEN
        RETURN leo_refusal('INVALID_INPUT',
            'p_transition_context.expected_version must be a positive integer');
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

    -- A repeat of a recorded rejection answers as before, whatever happened to the SD since.
    SELECT id INTO v_id FROM sd_phase_handoffs WHERE request_id = p_transition_context ->> 'request_id'
        AND sd_id = v_sd_id AND handoff_type = p_handoff_type AND status = 'rejected';
    IF v_id IS NOT NULL THEN
        RETURN jsonb_build_object('success', true, 'code', 'OK', 'handoff_id', v_id,
                                  'sd_id', v_sd_id, 'idempotent_hit', true);
    END IF;
    IF EXISTS (SELECT 1 FROM sd_phase_handoffs
               WHERE request_id = p_transition_context ->> 'request_id') THEN
        RETURN leo_refusal('INVALID_INPUT', format(
            'request_id %s was already used for another SD, handoff type or outcome (%s)',
            p_transition_context ->> 'request_id',
            (SELECT format('%s %s on %s', handoff_type, status, sd_id) FROM sd_phase_handoffs
             WHERE request_id = p_transition_context ->> 'request_id')));
    END IF;
    IF NOT pg_try_advisory_xact_lock(leo_sd_lock_key(v_sd_id)) THEN
        RETURN leo_refusal('CONCURRENT_LOCK',
            format('another transition of %s is in progress; retry shortly', v_sd_id),
            jsonb_build_object('sd_id', v_sd_id));
    END IF;
    SELECT * INTO v_sd FROM strategic_directives_v2 WHERE id = v_sd_id;
    v_state := jsonb_build_object('sd_id', v_sd_id, 'session_id', p_session_id,
                                  'handoff_type', p_handoff_type, 'sd', to_jsonb(v_sd),
                                  'context', p_transition_context);
    -- The status and phase the handoff starts from, as its transition function checks them.
    v_from := CASE p_handoff_type
        WHEN 'LEAD-TO-PLAN' THEN CASE WHEN v_sd.status IN ('draft', 'active')
            AND v_sd.current_phase IN ('LEAD', 'LEAD_APPROVAL') THEN NULL
            ELSE 'draft or active / LEAD or LEAD_APPROVAL' END
        WHEN 'PLAN-TO-EXEC' THEN CASE WHEN (v_sd.status, v_sd.current_phase)
            = ('in_progress', 'PLAN_PRD') THEN NULL ELSE 'in_progress / PLAN_PRD' END
        WHEN 'EXEC-TO-PLAN' THEN CASE WHEN (v_sd.status, v_sd.current_phase)
            = ('active', 'EXEC') THEN NULL ELSE 'active / EXEC' END
        WHEN 'PLAN-TO-LEAD' THEN CASE WHEN (v_sd.status, v_sd.current_phase)
            = ('active', 'EXEC_COMPLETE') THEN NULL ELSE 'active / EXEC_COMPLETE' END
        WHEN 'LEAD-FINAL-APPROVAL' THEN CASE WHEN (v_sd.status, v_sd.current_phase)
            = ('pending_approval', 'LEAD_FINAL') THEN NULL ELSE 'pending_approval / LEAD_FINAL' END
    END;
    IF v_from IS NOT NULL THEN
        RETURN leo_invalid_phase(v_state, v_from);
    END IF;
    v_refusal := leo_transition_guard(v_state);
    IF v_refusal IS NOT NULL THEN
        RETURN v_refusal;
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
