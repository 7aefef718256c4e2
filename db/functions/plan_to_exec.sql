-- PLAN-TO-EXEC: PLAN hands the finished PRD to EXEC.
-- Starts from in_progress / PLAN_PRD with a PRD; the PRD goes to in_progress / exec, the SD to
-- active / EXEC with is_working_on set. Stories are not touched.
CREATE OR REPLACE FUNCTION fn_atomic_plan_to_exec_transition(
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
    v_state := leo_transition_begin('PLAN-TO-EXEC', p_sd_id, p_prd_id, p_session_id, p_transition_context);
    IF v_state ? 'early' THEN RETURN v_state -> 'early'; END IF;

    IF (v_state #>> '{sd,status}', v_state #>> '{sd,current_phase}') <> ('in_progress', 'PLAN_PRD')
       OR v_state ->> 'prd_id' IS NULL THEN
        RETURN leo_invalid_phase(v_state, 'in_progress / PLAN_PRD with a PRD');
    END IF;
    v_refusal := leo_prd_status_guard(v_state);
    IF v_refusal IS NOT NULL THEN RETURN v_refusal; END IF;
    v_refusal := leo_transition_guard(v_state);
    IF v_refusal IS NOT NULL THEN RETURN v_refusal; END IF;

    v_state := leo_transition_audit_prepare(v_state);
    v_audit := (v_state ->> 'audit_id')::uuid;
    BEGIN
        v_step := '1. Transition PRD';
        UPDATE product_requirements_v2 SET status = 'in_progress', phase = 'exec', updated_at = now()
        WHERE id = v_state ->> 'prd_id';
        v_partial := v_partial || jsonb_build_object('prd_updated', true);

        v_step := '2. Transition SD';
        UPDATE strategic_directives_v2
        SET status = 'active', current_phase = 'EXEC', is_working_on = true,
            transition_version = transition_version + 1
        WHERE id = v_state ->> 'sd_id';
        v_partial := v_partial || jsonb_build_object('sd_updated', true);

        v_step := '3. Record handoff';
        RETURN leo_transition_complete(v_state, v_audit, 'PLAN', 'EXEC');
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
