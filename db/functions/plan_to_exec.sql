-- PLAN-TO-EXEC: PLAN hands the finished PRD to EXEC.
-- Starts from in_progress / PLAN_PRD with a PRD; the PRD goes to in_progress / exec, the SD to
-- active / EXEC with is_working_on set. Stories are not touched.
--
-- The precondition (phase, PRD): a refusal or NULL; read-only, so the snapshot step checks it
-- before any agent runs (fn_prepare_handoff) with the same refusal codes.
CREATE OR REPLACE FUNCTION leo_plan_to_exec_precondition(p_state jsonb)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF (p_state #>> '{sd,status}', p_state #>> '{sd,current_phase}') <> ('in_progress', 'PLAN_PRD')
       OR p_state ->> 'prd_id' IS NULL THEN
        RETURN leo_invalid_phase(p_state, 'in_progress / PLAN_PRD with a PRD');
    END IF;
    RETURN leo_prd_status_guard(p_state);
END $$;

--
-- Two paths, one outcome (docs/architecture.md, "The transition functions"): the entry point
-- below tries the whole transition as one data-modifying statement; everything else (a
-- refusal, a repeated request id, a failed step, a concurrent change) is answered by the
-- step-by-step path here. Keep their writes the same.
CREATE OR REPLACE FUNCTION leo_plan_to_exec_steps(
    p_sd_id text, p_prd_id text, p_session_id text, p_transition_context jsonb)
RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
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

    -- The precondition, shared with the snapshot step's precheck (fn_prepare_handoff).
    v_refusal := leo_plan_to_exec_precondition(v_state);
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

CREATE OR REPLACE FUNCTION fn_atomic_plan_to_exec_transition(
    p_sd_id text, p_prd_id text DEFAULT NULL, p_session_id text DEFAULT NULL,
    p_transition_context jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_ctx      jsonb := p_transition_context;
    v_request  text := p_transition_context ->> 'request_id';
    v_expected integer;
    v_result   jsonb;
    v_written  boolean;
    v_code text; v_msg text; v_detail text; v_where text;
BEGIN
    v_result := leo_transition_args(p_sd_id, p_session_id, v_ctx);
    IF v_result IS NOT NULL THEN RETURN v_result; END IF;
    v_expected := (v_ctx ->> 'expected_version')::integer;
    BEGIN
        WITH sd0 AS (
            SELECT s.ctid AS row_ctid, s.* FROM strategic_directives_v2 s
            WHERE s.id = p_sd_id OR s.sd_key = p_sd_id ORDER BY s.id = p_sd_id DESC LIMIT 1
        ), prd0 AS (
            SELECT p.ctid AS row_ctid, p.* FROM product_requirements_v2 p JOIN sd0 ON p.sd_id = sd0.id
        ), ids AS (
            SELECT gen_random_uuid() AS audit_id
        ), sd AS (
            -- 2. Transition SD, with every guard (first: the SD row is locked before the PRD)
            UPDATE strategic_directives_v2 s
            SET status = 'active', current_phase = 'EXEC', is_working_on = true,
                transition_version = s.transition_version + 1
            FROM sd0 o, prd0 p
            WHERE s.id = o.id AND s.ctid = o.row_ctid
              AND (o.status, o.current_phase) = ('in_progress', 'PLAN_PRD')
              AND (p_prd_id IS NULL OR p.id = p_prd_id)
              AND p.status NOT IN ('on_hold', 'rejected', 'cancelled')
              AND (v_expected IS NULL OR o.transition_version = v_expected)
              AND NOT EXISTS (
                  SELECT 1 FROM claude_sessions c
                  WHERE c.sd_id = o.id AND c.status = 'active'
                    AND c.heartbeat_at > now() - interval '300 seconds'
                    AND c.session_id IS DISTINCT FROM p_session_id)
              AND pg_try_advisory_xact_lock(hashtextextended('leo:sd:' || o.id, 0))
              AND pg_try_advisory_xact_lock(hashtextextended('leo:request:' || v_request, 0))
            RETURNING s.*
        ), prd AS (
            -- 1. Transition PRD
            UPDATE product_requirements_v2 p
            SET status = 'in_progress', phase = 'exec', updated_at = now()
            FROM prd0 o, sd
            WHERE p.id = o.id AND p.ctid = o.row_ctid
            RETURNING p.*
        ), h AS (
            -- Record handoff
            INSERT INTO sd_phase_handoffs (
                sd_id, handoff_type, from_phase, to_phase, status, validation_score,
                validation_passed, validation_details, metadata, request_id, session_id,
                accepted_at)
            SELECT sd.id, 'PLAN-TO-EXEC', 'PLAN', 'EXEC', 'accepted',
                   (v_ctx #>> '{gate_summary,normalized_score}')::numeric, true,
                   coalesce(v_ctx -> 'gate_summary', '{}'),
                   coalesce(v_ctx -> 'metadata', '{}') || jsonb_build_object('audit_id', ids.audit_id),
                   v_request, p_session_id, now()
            FROM sd, ids
            ON CONFLICT (request_id) DO NOTHING
            RETURNING id
        ), state AS (
            SELECT leo_state_object(
                       o.id, o.sd_key, o.status, o.current_phase, o.transition_version,
                       o.progress_percentage, o.is_working_on, o.claiming_session_id,
                       p.id, p.status, p.phase, x.stories) AS pre,
                   leo_state_object(
                       s.id, s.sd_key, s.status, s.current_phase, s.transition_version,
                       s.progress_percentage, s.is_working_on, s.claiming_session_id,
                       q.id, q.status, q.phase, x.stories) AS post,
                   NULL::jsonb AS extra
            FROM sd0 o, prd0 p, sd s, prd q,
                 LATERAL (SELECT (SELECT jsonb_object_agg(g.status, g.n)
                        FROM (SELECT u.status, count(*) AS n FROM user_stories u
                              WHERE u.sd_id = o.id GROUP BY u.status) g) AS stories) x
        ), a AS (
            INSERT INTO sd_transition_audit (
                id, sd_id, transition_type, session_id, request_id, pre_state, post_state,
                status, result, handoff_id, completed_at)
            SELECT ids.audit_id, s.id, 'PLAN_TO_EXEC', p_session_id, v_request, x.pre, x.post,
                   'completed',
                   leo_transition_result('PLAN-TO-EXEC', v_request, s.id, s.sd_key, ids.audit_id,
                                         h.id, s.transition_version, x.pre, x.post, x.extra),
                   h.id, now()
            FROM sd s, ids, h, state x
            ON CONFLICT (request_id) DO NOTHING
            RETURNING result
        )
        SELECT EXISTS (SELECT 1 FROM sd), (SELECT result FROM a) INTO v_written, v_result;
        IF v_written AND v_result IS NULL THEN
            RAISE EXCEPTION 'PLAN-TO-EXEC applied in part; undone' USING ERRCODE = 'LE001';
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL, v_where = PG_EXCEPTION_CONTEXT;
        PERFORM leo_transition_transient('PLAN-TO-EXEC', ARRAY[
            ['product_requirements_v2', '1. Transition PRD'],
            ['strategic_directives_v2', '2. Transition SD'],
            ['sd_phase_handoffs', '3. Record handoff'],
            ['sd_transition_audit', '3. Record handoff']], v_code, v_msg, v_detail, v_where);
        v_result := NULL;
    END;
    -- Not applied in one statement: a refusal, a repeated request id, a failed step or a row
    -- that changed since it was read. The step-by-step path gives the answer.
    RETURN coalesce(v_result,
        leo_plan_to_exec_steps(p_sd_id, p_prd_id, p_session_id, p_transition_context));
END $$;
