-- The five transitions in adopt mode: one engine, leo.leo_adopt_transition, behind the same
-- five function names and signatures as native mode (so the Python side is the same). It
-- refuses what native mode refuses (bad input, unknown SD, a busy lock, a repeated request id,
-- a wrong phase, a PRD on hold, a version conflict, another session's claim), and writes rows
-- their triggers accept, in the order they expect:
--   1. the accepted handoff row (their phase rule and their progress need it to exist first),
--      created_by = LEO's registered actor, the seven narrative elements from the gate summary,
--      the score rounded (the unrounded one stays in validation_details);
--   2. stories and PRD, as native mode does;
--   3. the SD (version bumped); at LEAD-FINAL-APPROVAL completion comes after the LEAD-FINAL
--      record, and the claim is released through their release_sd only after both;
--   4. the completed audit row, keyed on the SD's uuid_id, request id 'leo:<request id>'.
-- When their trigger vetoes a step, everything is rolled back and the answer is
-- TRANSITION_FAILED with their message and a failed audit row, nothing else. LEO takes their
-- advisory lock keys as well as its own, so their RPC and LEO's never run on one SD at once.

-- What the handoff's precondition refuses on this SD and PRD (INVALID_PHASE,
-- INVALID_PRD_STATUS), or NULL. Shared by the transition and the snapshot's precheck.
CREATE OR REPLACE FUNCTION leo.leo_adopt_precondition(
    p_handoff_type text, p_sd public.strategic_directives_v2, p_prd public.product_requirements_v2)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_phase  text := coalesce(p_sd.current_phase, 'LEAD_APPROVAL');
    v_ok     boolean;
    v_expect text;
BEGIN
    CASE p_handoff_type
        WHEN 'LEAD-TO-PLAN' THEN
            v_ok := p_sd.status IN ('draft', 'active') AND v_phase IN ('LEAD', 'LEAD_APPROVAL');
            v_expect := 'draft or active / LEAD or LEAD_APPROVAL';
        WHEN 'PLAN-TO-EXEC' THEN
            v_ok := (p_sd.status, v_phase) = ('in_progress', 'PLAN_PRD') AND p_prd.id IS NOT NULL;
            v_expect := 'in_progress / PLAN_PRD with a PRD';
        WHEN 'EXEC-TO-PLAN' THEN
            v_ok := (p_sd.status, v_phase) = ('active', 'EXEC') AND p_prd.id IS NOT NULL;
            v_expect := 'active / EXEC with a PRD';
        WHEN 'PLAN-TO-LEAD' THEN
            v_ok := (p_sd.status, v_phase) = ('active', 'EXEC_COMPLETE')
                    AND p_prd.status IS NOT DISTINCT FROM 'verification';
            v_expect := 'active / EXEC_COMPLETE with the PRD in verification';
        WHEN 'LEAD-FINAL-APPROVAL' THEN
            v_ok := (p_sd.status, v_phase) IN (('pending_approval', 'LEAD_FINAL'), ('completed', 'COMPLETED'));
            v_expect := 'pending_approval / LEAD_FINAL';
        ELSE
            RETURN leo.leo_refusal('INVALID_INPUT', format('unknown handoff type %s', p_handoff_type));
    END CASE;
    IF NOT v_ok THEN
        RETURN leo.leo_refusal('INVALID_PHASE',
            format('%s cannot start from %s / %s; it expects %s', p_handoff_type, p_sd.status, v_phase, v_expect),
            jsonb_build_object('sd_id', p_sd.id, 'expected', v_expect, 'actual', jsonb_build_object(
                'status', p_sd.status, 'current_phase', v_phase, 'prd_status', p_prd.status)));
    END IF;
    IF p_handoff_type IN ('PLAN-TO-EXEC', 'EXEC-TO-PLAN') AND p_prd.status IN ('on_hold', 'rejected', 'cancelled') THEN
        RETURN leo.leo_refusal('INVALID_PRD_STATUS',
            format('%s refuses PRD %s of %s: the PRD is %s; a PRD that is on_hold, rejected or cancelled is not overwritten (change its status first)',
                   p_handoff_type, p_prd.id, p_sd.id, p_prd.status),
            jsonb_build_object('sd_id', p_sd.id, 'prd_id', p_prd.id, 'prd_status', p_prd.status));
    END IF;
    RETURN NULL;
END $$;

-- CLAIMED_BY_OTHER_SESSION when another session holds a live claim on the SD (theirs: by
-- sd_key, 600 s), or NULL.
CREATE OR REPLACE FUNCTION leo.leo_adopt_claim_refusal(p_sd public.strategic_directives_v2, p_session_id text)
RETURNS jsonb LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT leo.leo_refusal('CLAIMED_BY_OTHER_SESSION',
        format('%s is claimed by session %s; wait for it to release, or for the claim to go stale after 600 s',
               p_sd.id, h.session_id),
        jsonb_build_object('sd_id', p_sd.id, 'claimed_by', h.session_id))
    FROM leo.leo_claim_holder(p_sd.sd_key) h
    WHERE h.session_id IS DISTINCT FROM p_session_id;
$$;

CREATE OR REPLACE FUNCTION leo.leo_adopt_transition(
    p_handoff_type text, p_sd_id text, p_prd_id text, p_session_id text, p_context jsonb)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_actor    text := leo.leo_actor();
    v_type     text := replace(p_handoff_type, '-', '_');
    v_request  text;
    v_expected jsonb;
    v_gate     jsonb;
    v_score    numeric;
    v_sd_id    text;
    v_sd       public.strategic_directives_v2;
    v_prd      public.product_requirements_v2;
    v_done     leo.transition_results;
    v_phase    text;
    v_version  integer;
    v_refusal  jsonb;
    v_phases   text[];
    v_target   text[];
    v_holder   text;
    v_audit    uuid := gen_random_uuid();
    v_pre      jsonb;
    v_post     jsonb;
    v_extra    jsonb := '{}';
    v_result   jsonb;
    v_narr     text[];
    v_handoff  uuid;
    v_step     text;
    v_partial  jsonb := '{}';
    v_n        integer;
    v_code     text;
    v_msg      text;
    v_detail   text;
    v_where    text;
    v_details  jsonb;
    v_approval jsonb;
BEGIN
    v_phases := CASE p_handoff_type
        WHEN 'LEAD-TO-PLAN' THEN ARRAY['LEAD', 'PLAN']
        WHEN 'PLAN-TO-EXEC' THEN ARRAY['PLAN', 'EXEC']
        WHEN 'EXEC-TO-PLAN' THEN ARRAY['EXEC', 'PLAN']
        WHEN 'PLAN-TO-LEAD' THEN ARRAY['PLAN', 'LEAD']
        WHEN 'LEAD-FINAL-APPROVAL' THEN ARRAY['LEAD', 'COMPLETED'] END;
    -- status and phase the SD moves to
    v_target := CASE p_handoff_type
        WHEN 'LEAD-TO-PLAN' THEN ARRAY['in_progress', 'PLAN_PRD']
        WHEN 'PLAN-TO-EXEC' THEN ARRAY['active', 'EXEC']
        WHEN 'EXEC-TO-PLAN' THEN ARRAY['active', 'EXEC_COMPLETE']
        WHEN 'PLAN-TO-LEAD' THEN ARRAY['pending_approval', 'LEAD_FINAL']
        WHEN 'LEAD-FINAL-APPROVAL' THEN ARRAY['completed', 'COMPLETED'] END;
    IF v_phases IS NULL THEN
        RETURN leo.leo_refusal('INVALID_INPUT', format('unknown handoff type %s', p_handoff_type));
    END IF;
    IF v_actor IS NULL THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'schema leo has no adoption record: run leo db adopt');
    END IF;
    IF p_sd_id IS NULL OR btrim(p_sd_id) = '' OR length(p_sd_id) > 200 THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'p_sd_id is required (at most 200 characters)');
    END IF;
    IF p_session_id IS NOT NULL AND (btrim(p_session_id) = '' OR length(p_session_id) > 200) THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'p_session_id must be NULL or 1 to 200 characters');
    END IF;
    IF p_context IS NULL OR jsonb_typeof(p_context) <> 'object'
       OR jsonb_typeof(p_context -> 'request_id') IS DISTINCT FROM 'string'
       OR btrim(p_context ->> 'request_id') = '' OR length(p_context ->> 'request_id') > 300 THEN
        RETURN leo.leo_refusal('INVALID_INPUT',
            'p_transition_context must be an object whose request_id (the idempotency key) is a non-empty string of at most 300 characters');
    END IF;
    v_request := p_context ->> 'request_id';
    v_expected := p_context -> 'expected_version';
    IF v_expected IS NOT NULL AND jsonb_typeof(v_expected) <> 'null' AND NOT (CASE
           WHEN jsonb_typeof(v_expected) = 'number' AND (v_expected #>> '{}') ~ '^[0-9]{1,9}$'
           THEN (v_expected #>> '{}')::integer >= 1 ELSE false END) THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'p_transition_context.expected_version must be a positive integer');
    END IF;
    v_gate := coalesce(p_context -> 'gate_summary', '{}');
    IF jsonb_typeof(v_gate) <> 'object' OR (p_context ? 'gate_summary'
           AND jsonb_typeof(v_gate -> 'passed') IS DISTINCT FROM 'boolean') THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'p_transition_context.gate_summary must be an object whose passed is true or false');
    END IF;
    IF (v_gate -> 'passed') = 'false'::jsonb THEN
        RETURN leo.leo_refusal('INVALID_INPUT',
            'the gate summary says the gates did not pass; a rejected handoff cannot transition');
    END IF;
    IF jsonb_typeof(v_gate -> 'normalized_score') = 'number' THEN
        v_score := (v_gate ->> 'normalized_score')::numeric;
        IF v_score NOT BETWEEN 0 AND 100 THEN
            RETURN leo.leo_refusal('INVALID_INPUT', 'p_transition_context.gate_summary.normalized_score must be a number from 0 to 100');
        END IF;
    ELSIF jsonb_typeof(v_gate -> 'normalized_score') NOT IN ('null') THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'p_transition_context.gate_summary.normalized_score must be a number from 0 to 100');
    END IF;
    IF length(v_gate::text) > 102400 THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'p_transition_context.gate_summary is larger than 100 KB');
    END IF;
    IF p_context ? 'metadata' AND jsonb_typeof(p_context -> 'metadata') <> 'object' THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'p_transition_context.metadata must be an object');
    END IF;

    v_sd_id := leo.leo_resolve_sd_id(p_sd_id);
    IF v_sd_id IS NULL THEN
        RETURN leo.leo_refusal('SD_NOT_FOUND', format('SD not found: %s', p_sd_id),
                               jsonb_build_object('sd_id', p_sd_id));
    END IF;
    SELECT * INTO v_sd FROM public.strategic_directives_v2 WHERE id = v_sd_id;
    -- Ours, and theirs: their RPC locks hashtext() of the caller's spelling (id or key).
    IF NOT pg_try_advisory_xact_lock(hashtextextended('leo:sd:' || v_sd_id, 0))
       OR NOT pg_try_advisory_xact_lock(hashtext(v_sd.id::text))
       OR NOT pg_try_advisory_xact_lock(hashtext(v_sd.sd_key)) THEN
        RETURN leo.leo_refusal('CONCURRENT_LOCK',
            format('another transition of %s is in progress; retry shortly', v_sd_id),
            jsonb_build_object('sd_id', v_sd_id));
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtextextended('leo:request:' || v_request, 0)) THEN
        RETURN leo.leo_refusal('CONCURRENT_LOCK',
            format('request_id %s is being used by another call right now; retry shortly', v_request),
            jsonb_build_object('sd_id', v_sd_id));
    END IF;

    -- A request id that already ran returns its first outcome, applying nothing.
    SELECT * INTO v_done FROM leo.transition_results WHERE request_id = v_request;
    IF FOUND THEN
        IF v_done.sd_id <> v_sd_id OR v_done.transition_type <> v_type THEN
            RETURN leo.leo_refusal('INVALID_INPUT', format('request_id %s was already used for %s on %s',
                v_request, replace(v_done.transition_type, '_', '-'), v_done.sd_id));
        END IF;
        RETURN v_done.result || jsonb_build_object('idempotent_hit', true);
    END IF;
    IF EXISTS (SELECT 1 FROM leo.handoff_requests WHERE request_id = v_request) THEN
        RETURN leo.leo_refusal('INVALID_INPUT',
            format('request_id %s already recorded a rejected handoff; use a new request id', v_request),
            jsonb_build_object('sd_id', v_sd_id));
    END IF;

    SELECT * INTO v_sd FROM public.strategic_directives_v2 WHERE id = v_sd_id FOR UPDATE;
    IF p_prd_id IS NOT NULL THEN
        SELECT * INTO v_prd FROM public.product_requirements_v2 p
        WHERE p.id = p_prd_id AND (p.sd_id = v_sd.id
              OR (p.sd_id IS NULL AND p.directive_id IN (v_sd.id, v_sd.sd_key)))
        FOR UPDATE;
        IF NOT FOUND THEN
            RETURN leo.leo_refusal('INVALID_INPUT', format('PRD %s does not belong to %s', p_prd_id, v_sd_id),
                                   jsonb_build_object('sd_id', v_sd_id, 'prd_id', p_prd_id));
        END IF;
    ELSE
        SELECT * INTO v_prd FROM public.product_requirements_v2
        WHERE id = (SELECT prd_id FROM leo.prd_pick WHERE sd_id = v_sd_id) FOR UPDATE;
    END IF;

    v_phase := coalesce(v_sd.current_phase, 'LEAD_APPROVAL');
    v_version := coalesce(v_sd.transition_version, 1);
    IF p_handoff_type = 'LEAD-FINAL-APPROVAL' AND (v_sd.status, v_phase) = ('completed', 'COMPLETED') THEN
        RETURN coalesce(
            (SELECT t.result FROM leo.transition_results t WHERE t.sd_id = v_sd_id
               AND t.transition_type = 'LEAD_FINAL_APPROVAL' AND t.status = 'completed'
             ORDER BY t.created_at DESC LIMIT 1),
            jsonb_build_object('success', true, 'code', 'OK', 'handoff_type', p_handoff_type,
                               'sd_id', v_sd_id, 'sd_key', v_sd.sd_key, 'transition_version', v_version,
                               'post_state', leo.leo_sd_state(v_sd_id))
        ) || jsonb_build_object('idempotent_hit', true, 'already_completed', true);
    END IF;
    v_refusal := leo.leo_adopt_precondition(p_handoff_type, v_sd, v_prd);
    IF v_refusal IS NOT NULL THEN
        RETURN v_refusal;
    END IF;
    IF jsonb_typeof(v_expected) = 'number' AND (v_expected #>> '{}')::integer <> v_version THEN
        RETURN leo.leo_refusal('VERSION_CONFLICT',
            format('%s is at transition_version %s, the caller expected %s; reload and retry',
                   v_sd_id, v_version, v_expected #>> '{}'),
            jsonb_build_object('sd_id', v_sd_id, 'expected_version', (v_expected #>> '{}')::integer,
                               'actual_version', v_version));
    END IF;
    SELECT h.session_id INTO v_holder FROM leo.leo_claim_holder(v_sd.sd_key) h;
    v_refusal := leo.leo_adopt_claim_refusal(v_sd, p_session_id);
    IF v_refusal IS NOT NULL THEN
        RETURN v_refusal;
    END IF;

    v_pre := leo.leo_sd_state(v_sd_id);
    v_narr := leo.leo_narrative(p_handoff_type, v_sd.sd_key, v_gate, v_request, true);
    IF p_handoff_type = 'LEAD-FINAL-APPROVAL' THEN
        v_approval := leo.leo_lead_approval(v_sd_id);
    END IF;
    BEGIN
        v_step := '1. Record handoff';
        INSERT INTO public.sd_phase_handoffs (
            sd_id, from_phase, to_phase, handoff_type, status, executive_summary,
            deliverables_manifest, key_decisions, known_issues, resource_utilization, action_items,
            completeness_report, metadata, created_at, accepted_at, created_by, validation_details,
            validation_score, validation_passed)
        VALUES (
            v_sd.id, v_phases[1], v_phases[2], p_handoff_type, 'accepted', v_narr[1], v_narr[2],
            v_narr[3], v_narr[4], v_narr[5], v_narr[6], v_narr[7],
            coalesce(p_context -> 'metadata', '{}') || jsonb_build_object(
                'audit_id', v_audit, 'request_id', v_request, 'recorded_by', 'leo',
                'actor', v_actor, 'db_role', session_user)
                || jsonb_strip_nulls(jsonb_build_object('lead_approval', v_approval)),
            localtimestamp, localtimestamp, v_actor, v_gate, round(v_score)::integer, true)
        RETURNING id INTO v_handoff;
        INSERT INTO leo.handoff_requests (request_id, handoff_id, sd_id, session_id)
        VALUES (v_request, v_handoff, v_sd_id, p_session_id);
        v_partial := v_partial || jsonb_build_object('handoff_recorded', true);

        IF p_handoff_type = 'PLAN-TO-EXEC' THEN
            v_step := '2. Transition PRD';
            UPDATE public.product_requirements_v2 SET status = 'in_progress', phase = 'exec',
                updated_at = localtimestamp
            WHERE id = v_prd.id;
            v_partial := v_partial || jsonb_build_object('prd_updated', true);
        ELSIF p_handoff_type IN ('EXEC-TO-PLAN', 'PLAN-TO-LEAD') THEN
            v_step := '2. Transition user stories';
            UPDATE public.user_stories
            SET status = 'completed', validation_status = 'validated',
                e2e_test_status = CASE WHEN p_handoff_type = 'EXEC-TO-PLAN' AND e2e_test_path IS NOT NULL
                                       THEN 'passing' ELSE e2e_test_status END,
                completed_by = coalesce(completed_by, v_actor),
                completed_at = coalesce(completed_at, localtimestamp), updated_at = localtimestamp
            WHERE sd_id = v_sd.id AND coalesce(status, 'draft') <> 'blocked'
              AND (coalesce(status, 'draft') <> 'completed' OR validation_status IS DISTINCT FROM 'validated');
            GET DIAGNOSTICS v_n = ROW_COUNT;
            v_extra := jsonb_build_object('stories_updated', v_n);
            v_partial := v_partial || jsonb_build_object('user_stories_updated', v_n);
            v_step := '3. Transition PRD';
            IF p_handoff_type = 'EXEC-TO-PLAN' THEN
                UPDATE public.product_requirements_v2 SET status = 'verification', phase = 'verification',
                    updated_at = localtimestamp
                WHERE id = v_prd.id;
            ELSE
                UPDATE public.product_requirements_v2 SET status = 'completed', phase = 'LEAD_APPROVAL',
                    progress = 100, updated_at = localtimestamp
                WHERE id = v_prd.id;
            END IF;
            v_partial := v_partial || jsonb_build_object('prd_updated', true);
        END IF;

        v_step := CASE WHEN p_handoff_type = 'LEAD-FINAL-APPROVAL' THEN '2. Complete SD' ELSE 'Transition SD' END;
        UPDATE public.strategic_directives_v2
        SET status = v_target[1], current_phase = v_target[2], transition_version = v_version + 1,
            completion_date = CASE WHEN v_target[1] = 'completed' THEN localtimestamp ELSE completion_date END
        WHERE id = v_sd.id;
        v_partial := v_partial || jsonb_build_object('sd_updated', true);

        IF p_handoff_type = 'LEAD-FINAL-APPROVAL' AND v_holder IS NOT NULL THEN
            v_step := '3. Release session claim';
            PERFORM public.release_sd(p_session_id => v_holder, p_reason => 'completed');
            v_extra := jsonb_build_object('claims_released', 1);
        ELSIF p_handoff_type = 'LEAD-FINAL-APPROVAL' THEN
            v_extra := jsonb_build_object('claims_released', 0);
        END IF;

        v_step := 'Record audit';
        v_extra := v_extra || jsonb_strip_nulls(jsonb_build_object('lead_approval', v_approval));
        v_post := leo.leo_sd_state(v_sd_id) || v_extra;
        v_result := jsonb_build_object(
            'success', true, 'code', 'OK', 'idempotent_hit', false, 'handoff_type', p_handoff_type,
            'request_id', v_request, 'sd_id', v_sd_id, 'sd_key', v_sd.sd_key, 'audit_id', v_audit,
            'handoff_id', v_handoff, 'transition_version', v_version + 1, 'pre_state', v_pre,
            'post_state', v_post, 'actor', v_actor, 'db_role', session_user) || v_extra;
        INSERT INTO public.sd_transition_audit (
            id, sd_id, transition_type, session_id, request_id, pre_state, post_state, status,
            started_at, completed_at)
        VALUES (v_audit, v_sd.uuid_id, v_type, p_session_id, 'leo:' || v_request, v_pre, v_post,
                'completed', now(), clock_timestamp());
        INSERT INTO leo.transition_results (audit_id, request_id, sd_id, transition_type, status, result, handoff_id)
        VALUES (v_audit, v_request, v_sd_id, v_type, 'completed', v_result, v_handoff);
        RETURN v_result;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL, v_where = PG_EXCEPTION_CONTEXT;
        IF v_code IN ('40P01', '40001') THEN
            RAISE EXCEPTION '% at step "%": %', p_handoff_type, v_step, v_msg
                USING ERRCODE = v_code, DETAIL = coalesce(v_detail, ''),
                      HINT = 'transient conflict with another transaction; nothing was applied, retry';
        END IF;
        v_details := jsonb_build_object(
            'error_code', v_code, 'error_message', v_msg, 'error_detail', v_detail,
            'error_context', v_where,
            'failed_step', v_step, 'pre_state', v_pre, 'partial_state', v_partial,
            'recovery_action', format(
                'Nothing was applied (all steps rolled back). Fix the cause of SQLSTATE %s at step "%s" '
                '(a rule of their database refused it), then re-run the %s handoff with a new request id.',
                v_code, v_step, p_handoff_type));
        v_result := leo.leo_refusal('TRANSITION_FAILED',
            format('%s failed at step "%s": %s', p_handoff_type, v_step, v_msg),
            jsonb_build_object('sd_id', v_sd_id, 'audit_id', v_audit, 'request_id', v_request,
                               'error_details', v_details));
        INSERT INTO public.sd_transition_audit (
            id, sd_id, transition_type, session_id, request_id, pre_state, status, error_details,
            started_at, completed_at)
        VALUES (v_audit, v_sd.uuid_id, v_type, p_session_id, 'leo:' || v_request, v_pre, 'failed',
                v_details, now(), clock_timestamp());
        INSERT INTO leo.transition_results (audit_id, request_id, sd_id, transition_type, status, result, error_details)
        VALUES (v_audit, v_request, v_sd_id, v_type, 'failed', v_result, v_details);
        RETURN v_result;
    END;
END $$;

CREATE OR REPLACE FUNCTION leo.fn_atomic_lead_to_plan_transition(
    p_sd_id text, p_prd_id text DEFAULT NULL, p_session_id text DEFAULT NULL,
    p_transition_context jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE sql SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT leo.leo_adopt_transition('LEAD-TO-PLAN', p_sd_id, p_prd_id, p_session_id, p_transition_context);
$$;

CREATE OR REPLACE FUNCTION leo.fn_atomic_plan_to_exec_transition(
    p_sd_id text, p_prd_id text DEFAULT NULL, p_session_id text DEFAULT NULL,
    p_transition_context jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE sql SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT leo.leo_adopt_transition('PLAN-TO-EXEC', p_sd_id, p_prd_id, p_session_id, p_transition_context);
$$;

CREATE OR REPLACE FUNCTION leo.fn_atomic_exec_to_plan_transition(
    p_sd_id text, p_prd_id text DEFAULT NULL, p_session_id text DEFAULT NULL,
    p_transition_context jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE sql SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT leo.leo_adopt_transition('EXEC-TO-PLAN', p_sd_id, p_prd_id, p_session_id, p_transition_context);
$$;

CREATE OR REPLACE FUNCTION leo.fn_atomic_plan_to_lead_transition(
    p_sd_id text, p_prd_id text DEFAULT NULL, p_session_id text DEFAULT NULL,
    p_transition_context jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE sql SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT leo.leo_adopt_transition('PLAN-TO-LEAD', p_sd_id, p_prd_id, p_session_id, p_transition_context);
$$;

CREATE OR REPLACE FUNCTION leo.fn_atomic_lead_final_approval_transition(
    p_sd_id text, p_prd_id text DEFAULT NULL, p_session_id text DEFAULT NULL,
    p_transition_context jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE sql SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT leo.leo_adopt_transition('LEAD-FINAL-APPROVAL', p_sd_id, p_prd_id, p_session_id, p_transition_context);
$$;
