-- EXEC-TO-PLAN: EXEC reports the implementation done; PLAN takes it into verification.
-- Starts from active / EXEC. Stories that are not blocked become completed and validated
-- (e2e passing where a test path is set, unless reported failing), the PRD goes to verification, the SD to
-- EXEC_COMPLETE. All of it, the handoff record and the audit row, or none of it.
CREATE OR REPLACE FUNCTION fn_atomic_exec_to_plan_transition(
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
    v_state := leo_transition_begin('EXEC-TO-PLAN', p_sd_id, p_prd_id, p_session_id, p_transition_context);
    IF v_state ? 'early' THEN RETURN v_state -> 'early'; END IF;

    IF (v_state #>> '{sd,status}', v_state #>> '{sd,current_phase}') <> ('active', 'EXEC') THEN
        RETURN leo_invalid_phase(v_state, 'active / EXEC');
    END IF;
    IF v_state ->> 'prd_id' IS NULL THEN
        RETURN leo_invalid_phase(v_state, 'active / EXEC with a PRD');
    END IF;
    v_refusal := leo_prd_status_guard(v_state);
    IF v_refusal IS NOT NULL THEN RETURN v_refusal; END IF;
    v_refusal := leo_transition_guard(v_state);
    IF v_refusal IS NOT NULL THEN RETURN v_refusal; END IF;

    v_state := leo_transition_audit_prepare(v_state);
    v_audit := (v_state ->> 'audit_id')::uuid;
    BEGIN
        v_step := '1. Transition user stories';
        UPDATE user_stories
        SET status = 'completed', validation_status = 'validated',
            -- A test EXEC reported failing stays failing (PLAN_VERIFY's TESTING rule reads it).
            e2e_test_status = CASE WHEN e2e_test_path IS NOT NULL AND e2e_test_status <> 'failing'
                                   THEN 'passing' ELSE e2e_test_status END,
            completed_by = coalesce(completed_by, 'system:fn_atomic_exec_to_plan_transition'),
            completed_at = coalesce(completed_at, now()), updated_at = now()
        WHERE sd_id = v_state ->> 'sd_id' AND status <> 'blocked';
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_partial := v_partial || jsonb_build_object('user_stories_updated', v_n);

        v_step := '2. Transition PRD';
        UPDATE product_requirements_v2 SET status = 'verification', phase = 'verification', updated_at = now()
        WHERE id = v_state ->> 'prd_id';
        v_partial := v_partial || jsonb_build_object('prd_updated', true);

        v_step := '3. Transition SD';
        UPDATE strategic_directives_v2 SET status = 'active', current_phase = 'EXEC_COMPLETE',
            transition_version = transition_version + 1
        WHERE id = v_state ->> 'sd_id';
        v_partial := v_partial || jsonb_build_object('sd_updated', true);

        v_step := '4. Record handoff';
        RETURN leo_transition_complete(v_state, v_audit, 'EXEC', 'PLAN',
                                       jsonb_build_object('stories_updated', v_n));
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
