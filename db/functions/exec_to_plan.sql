-- EXEC-TO-PLAN: EXEC reports the implementation done; PLAN takes it into verification.
-- Starts from active / EXEC. Stories that are not blocked become completed and validated
-- (e2e passing where a test path is set, unless reported failing), the PRD goes to verification, the SD to
-- EXEC_COMPLETE. All of it, the handoff record and the audit row, or none of it.
--
-- The precondition (phase, PRD): a refusal or NULL; read-only, so the snapshot step checks it
-- before any agent runs (fn_prepare_handoff) with the same refusal codes.
CREATE OR REPLACE FUNCTION leo_exec_to_plan_precondition(p_state jsonb)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF (p_state #>> '{sd,status}', p_state #>> '{sd,current_phase}') <> ('active', 'EXEC') THEN
        RETURN leo_invalid_phase(p_state, 'active / EXEC');
    END IF;
    IF p_state ->> 'prd_id' IS NULL THEN
        RETURN leo_invalid_phase(p_state, 'active / EXEC with a PRD');
    END IF;
    RETURN leo_prd_status_guard(p_state);
END $$;

--
-- Two paths, one outcome (docs/architecture.md, "The transition functions"): the entry point
-- below tries the whole transition as one data-modifying statement; everything else (a
-- refusal, a repeated request id, a failed step, a concurrent change) is answered by the
-- step-by-step path here. Keep their writes the same.
CREATE OR REPLACE FUNCTION leo_exec_to_plan_steps(
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
    v_state := leo_transition_begin('EXEC-TO-PLAN', p_sd_id, p_prd_id, p_session_id, p_transition_context);
    IF v_state ? 'early' THEN RETURN v_state -> 'early'; END IF;

    -- The precondition, shared with the snapshot step's precheck (fn_prepare_handoff).
    v_refusal := leo_exec_to_plan_precondition(v_state);
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

CREATE OR REPLACE FUNCTION fn_atomic_exec_to_plan_transition(
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
        ), st0 AS (
            SELECT u.ctid AS row_ctid, u.id, u.status, u.status <> 'blocked' AS touch
            FROM user_stories u JOIN sd0 ON u.sd_id = sd0.id
        ), ids AS (
            SELECT gen_random_uuid() AS audit_id
        ), sd AS (
            -- 3. Transition SD, with every guard (first: the SD row is locked before the rest)
            UPDATE strategic_directives_v2 s
            SET status = 'active', current_phase = 'EXEC_COMPLETE',
                transition_version = s.transition_version + 1
            FROM sd0 o, prd0 p
            WHERE s.id = o.id AND s.ctid = o.row_ctid
              AND (o.status, o.current_phase) = ('active', 'EXEC')
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
            -- 2. Transition PRD
            UPDATE product_requirements_v2 p
            SET status = 'verification', phase = 'verification', updated_at = now()
            FROM prd0 o, sd
            WHERE p.id = o.id AND p.ctid = o.row_ctid
            RETURNING p.*
        ), st AS (
            -- 1. Transition user stories
            UPDATE user_stories u
            SET status = 'completed', validation_status = 'validated',
                -- A test EXEC reported failing stays failing (as in step 1 above).
                e2e_test_status = CASE WHEN u.e2e_test_path IS NOT NULL AND u.e2e_test_status <> 'failing'
                                       THEN 'passing' ELSE u.e2e_test_status END,
                completed_by = coalesce(u.completed_by, 'system:fn_atomic_exec_to_plan_transition'),
                completed_at = coalesce(u.completed_at, now()), updated_at = now()
            FROM st0 o, sd
            WHERE u.id = o.id AND u.ctid = o.row_ctid AND o.touch
            RETURNING u.id, u.status
        ), h AS (
            -- 4. Record handoff
            INSERT INTO sd_phase_handoffs (
                sd_id, handoff_type, from_phase, to_phase, status, validation_score,
                validation_passed, validation_details, metadata, request_id, session_id,
                accepted_at)
            SELECT sd.id, 'EXEC-TO-PLAN', 'EXEC', 'PLAN', 'accepted',
                   (v_ctx #>> '{gate_summary,normalized_score}')::numeric, true,
                   coalesce(v_ctx -> 'gate_summary', '{}'),
                   coalesce(v_ctx -> 'metadata', '{}') || jsonb_build_object('audit_id', ids.audit_id),
                   v_request, p_session_id, now()
            FROM sd, ids
            ON CONFLICT (request_id) DO NOTHING
            RETURNING id
        ), n AS (
            SELECT (SELECT count(*) FROM prd) AS prds,
                   (SELECT count(*) FROM st) AS stories_updated,
                   (SELECT count(*) FROM st0 WHERE touch) AS stories_read
        ), state AS (
            SELECT leo_state_object(
                       o.id, o.sd_key, o.status, o.current_phase, o.transition_version,
                       o.progress_percentage, o.is_working_on, o.claiming_session_id,
                       p.id, p.status, p.phase,
                       (SELECT jsonb_object_agg(g.status, g.n)
                        FROM (SELECT status, count(*) AS n FROM st0 GROUP BY status) g)) AS pre,
                   leo_state_object(
                       s.id, s.sd_key, s.status, s.current_phase, s.transition_version,
                       s.progress_percentage, s.is_working_on, s.claiming_session_id,
                       q.id, q.status, q.phase,
                       (SELECT jsonb_object_agg(g.status, g.n)
                        FROM (SELECT coalesce(st.status, x.status) AS status, count(*) AS n
                              FROM st0 x LEFT JOIN st ON st.id = x.id GROUP BY 1) g))
                   || jsonb_build_object('stories_updated', n.stories_updated) AS post,
                   jsonb_build_object('stories_updated', n.stories_updated) AS extra
            FROM sd0 o, prd0 p, sd s, prd q, n
            WHERE n.prds = 1 AND n.stories_updated = n.stories_read
        ), a AS (
            INSERT INTO sd_transition_audit (
                id, sd_id, transition_type, session_id, request_id, pre_state, post_state,
                status, result, handoff_id, completed_at)
            SELECT ids.audit_id, s.id, 'EXEC_TO_PLAN', p_session_id, v_request, x.pre, x.post,
                   'completed',
                   leo_transition_result('EXEC-TO-PLAN', v_request, s.id, s.sd_key, ids.audit_id,
                                         h.id, s.transition_version, x.pre, x.post, x.extra),
                   h.id, now()
            FROM sd s, ids, h, state x
            ON CONFLICT (request_id) DO NOTHING
            RETURNING result
        )
        SELECT EXISTS (SELECT 1 FROM sd), (SELECT result FROM a) INTO v_written, v_result;
        IF v_written AND v_result IS NULL THEN
            RAISE EXCEPTION 'EXEC-TO-PLAN applied in part; undone' USING ERRCODE = 'LE001';
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL, v_where = PG_EXCEPTION_CONTEXT;
        PERFORM leo_transition_transient('EXEC-TO-PLAN', ARRAY[
            ['user_stories', '1. Transition user stories'],
            ['product_requirements_v2', '2. Transition PRD'],
            ['strategic_directives_v2', '3. Transition SD'],
            ['sd_phase_handoffs', '4. Record handoff'],
            ['sd_transition_audit', '4. Record handoff']], v_code, v_msg, v_detail, v_where);
        v_result := NULL;
    END;
    -- Not applied in one statement: a refusal, a repeated request id, a failed step or a row
    -- that changed since it was read. The step-by-step path gives the answer.
    RETURN coalesce(v_result,
        leo_exec_to_plan_steps(p_sd_id, p_prd_id, p_session_id, p_transition_context));
END $$;
