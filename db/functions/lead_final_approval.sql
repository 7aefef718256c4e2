-- LEAD-FINAL-APPROVAL: LEAD approves the delivered SD and closes it.
-- Starts from pending_approval / LEAD_FINAL; the SD becomes completed / COMPLETED with progress
-- 100, is no longer worked on, and its session claim is released. On an SD that is already
-- completed it is an idempotent success that applies nothing, unless a BYPASS-COMPLETION
-- completed it: that is refused with INVALID_PHASE, naming the bypass.
CREATE OR REPLACE FUNCTION fn_atomic_lead_final_approval_transition(
    p_sd_id text, p_prd_id text DEFAULT NULL, p_session_id text DEFAULT NULL,
    p_transition_context jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_state   jsonb;
    v_refusal jsonb;
    v_audit   uuid;
    v_step    text;
    v_partial jsonb := '{}';
    v_n       integer;
BEGIN
    v_state := leo_transition_begin('LEAD-FINAL-APPROVAL', p_sd_id, p_prd_id, p_session_id, p_transition_context);
    IF v_state ? 'early' THEN RETURN v_state -> 'early'; END IF;

    IF (v_state #>> '{sd,status}', v_state #>> '{sd,current_phase}') = ('completed', 'COMPLETED') THEN
        -- Completed by a BYPASS-COMPLETION: never answered as an approval (db/functions/bypass.sql).
        v_refusal := leo_bypass_refusal(v_state);
        IF v_refusal IS NOT NULL THEN RETURN v_refusal; END IF;
        RETURN coalesce(
            (SELECT a.result FROM sd_transition_audit a
             WHERE a.sd_id = v_state ->> 'sd_id' AND a.transition_type = 'LEAD_FINAL_APPROVAL'
               AND a.status = 'completed'
             ORDER BY a.completed_at DESC LIMIT 1),
            jsonb_build_object('success', true, 'code', 'OK', 'handoff_type', 'LEAD-FINAL-APPROVAL',
                               'sd_id', v_state ->> 'sd_id', 'sd_key', v_state #>> '{sd,sd_key}',
                               'transition_version', (v_state #>> '{sd,transition_version}')::integer,
                               'post_state', leo_sd_state(v_state ->> 'sd_id'))
        ) || jsonb_build_object('idempotent_hit', true, 'already_completed', true);
    END IF;
    IF (v_state #>> '{sd,status}', v_state #>> '{sd,current_phase}') <> ('pending_approval', 'LEAD_FINAL') THEN
        RETURN leo_invalid_phase(v_state, 'pending_approval / LEAD_FINAL');
    END IF;
    v_refusal := leo_transition_guard(v_state);
    IF v_refusal IS NOT NULL THEN RETURN v_refusal; END IF;

    v_state := leo_transition_audit_prepare(v_state);
    v_audit := (v_state ->> 'audit_id')::uuid;
    BEGIN
        v_step := '1. Complete SD';
        UPDATE strategic_directives_v2
        SET status = 'completed', current_phase = 'COMPLETED', progress_percentage = 100,
            is_working_on = false, active_session_id = NULL, claiming_session_id = NULL,
            completion_date = now(), transition_version = transition_version + 1
        WHERE id = v_state ->> 'sd_id';
        v_partial := v_partial || jsonb_build_object('sd_updated', true);

        v_step := '2. Release session claim';
        UPDATE claude_sessions
        SET status = 'released', released_at = now(), release_reason = 'completed'
        WHERE sd_id = v_state ->> 'sd_id' AND status = 'active';
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_partial := v_partial || jsonb_build_object('claims_released', v_n);

        v_step := '3. Record handoff';
        RETURN leo_transition_complete(v_state, v_audit, 'LEAD', 'COMPLETED',
                                       jsonb_build_object('claims_released', v_n));
    EXCEPTION WHEN OTHERS THEN
        DECLARE
            v_state_code text; v_msg text; v_detail text;
        BEGIN
            GET STACKED DIAGNOSTICS v_state_code = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
                                    v_detail = PG_EXCEPTION_DETAIL;
            RETURN leo_transition_fail(v_state, v_audit, v_step, v_partial, v_state_code, v_msg, v_detail);
        END;
    END;
END $$;
