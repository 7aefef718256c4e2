-- The commit step, rejections, sub-agent results, EXEC's report and SD edits in adopt mode:
-- same names and signatures as native mode, rows their triggers accept.

-- A rejected handoff: their row (their triggers ask no claim of rejections), the request id in
-- leo. As in native mode (F10), it passes the transition's lock, phase, version and claim
-- checks: a verdict on a version the SD no longer has, or on an SD another session holds, is
-- refused (fn_commit_handoff then records the failed audit row).
CREATE OR REPLACE FUNCTION leo.fn_record_handoff_rejection(
    p_sd_id text, p_handoff_type text, p_session_id text DEFAULT NULL,
    p_transition_context jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_actor   text := leo.leo_actor();
    v_sd_id   text;
    v_sd_key  text;
    v_id      uuid;
    v_gate    jsonb;
    v_phases  text[];
    v_request text;
    v_prior   leo.handoff_requests;
    v_narr    text[];
    v_sd      public.strategic_directives_v2;
    v_phase   text;
    v_expect  text;
    v_version integer;
    v_want    jsonb := p_transition_context -> 'expected_version';
    v_refusal jsonb;
BEGIN
    v_phases := CASE p_handoff_type
        WHEN 'LEAD-TO-PLAN' THEN ARRAY['LEAD', 'PLAN']
        WHEN 'PLAN-TO-EXEC' THEN ARRAY['PLAN', 'EXEC']
        WHEN 'EXEC-TO-PLAN' THEN ARRAY['EXEC', 'PLAN']
        WHEN 'PLAN-TO-LEAD' THEN ARRAY['PLAN', 'LEAD']
        WHEN 'LEAD-FINAL-APPROVAL' THEN ARRAY['LEAD', 'COMPLETED'] END;
    IF v_phases IS NULL THEN
        RETURN leo.leo_refusal('INVALID_INPUT', format('unknown handoff type: %s', p_handoff_type));
    END IF;
    IF p_transition_context IS NULL OR jsonb_typeof(p_transition_context) <> 'object'
       OR jsonb_typeof(p_transition_context -> 'request_id') IS DISTINCT FROM 'string'
       OR btrim(p_transition_context ->> 'request_id') = ''
       OR length(p_transition_context ->> 'request_id') > 300 THEN
        RETURN leo.leo_refusal('INVALID_INPUT',
            'p_transition_context must be an object with a request_id of at most 300 characters');
    END IF;
    IF p_transition_context ? 'metadata' AND jsonb_typeof(p_transition_context -> 'metadata') <> 'object' THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'p_transition_context.metadata must be an object');
    END IF;
    v_gate := coalesce(p_transition_context -> 'gate_summary', '{}');
    IF jsonb_typeof(v_gate) <> 'object' OR length(v_gate::text) > 102400 THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'p_transition_context.gate_summary must be an object of at most 100 KB');
    END IF;
    v_request := p_transition_context ->> 'request_id';
    v_sd_id := leo.leo_resolve_sd_id(p_sd_id);
    IF v_sd_id IS NULL THEN
        RETURN leo.leo_refusal('SD_NOT_FOUND', format('SD not found: %s', p_sd_id),
                               jsonb_build_object('sd_id', p_sd_id));
    END IF;
    SELECT sd_key INTO v_sd_key FROM public.strategic_directives_v2 WHERE id = v_sd_id;
    PERFORM pg_advisory_xact_lock(hashtextextended('leo:request:' || v_request, 0));
    SELECT * INTO v_prior FROM leo.handoff_requests WHERE request_id = v_request;
    IF FOUND THEN
        IF v_prior.sd_id = v_sd_id AND EXISTS (SELECT 1 FROM public.sd_phase_handoffs
                WHERE id = v_prior.handoff_id AND handoff_type = p_handoff_type AND status = 'rejected') THEN
            RETURN jsonb_build_object('success', true, 'code', 'OK', 'handoff_id', v_prior.handoff_id,
                                      'sd_id', v_sd_id, 'idempotent_hit', true);
        END IF;
        RETURN leo.leo_refusal('INVALID_INPUT', format(
            'request_id %s was already used for another SD, handoff type or outcome', v_request));
    END IF;
    IF EXISTS (SELECT 1 FROM leo.transition_results WHERE request_id = v_request) THEN
        RETURN leo.leo_refusal('INVALID_INPUT', format(
            'request_id %s was already used for a transition', v_request));
    END IF;
    SELECT * INTO v_sd FROM public.strategic_directives_v2 WHERE id = v_sd_id;
    IF NOT pg_try_advisory_xact_lock(hashtextextended('leo:sd:' || v_sd_id, 0))
       OR NOT pg_try_advisory_xact_lock(hashtext(v_sd.id::text))
       OR NOT pg_try_advisory_xact_lock(hashtext(v_sd.sd_key)) THEN
        RETURN leo.leo_refusal('CONCURRENT_LOCK',
            format('another transition of %s is in progress; retry shortly', v_sd_id),
            jsonb_build_object('sd_id', v_sd_id));
    END IF;
    -- The status and phase the handoff starts from, as its transition checks them.
    v_phase := coalesce(v_sd.current_phase, 'LEAD_APPROVAL');
    v_expect := CASE p_handoff_type
        WHEN 'LEAD-TO-PLAN' THEN CASE WHEN v_sd.status IN ('draft', 'active')
            AND v_phase IN ('LEAD', 'LEAD_APPROVAL') THEN NULL
            ELSE 'draft or active / LEAD or LEAD_APPROVAL' END
        WHEN 'PLAN-TO-EXEC' THEN CASE WHEN (v_sd.status, v_phase) = ('in_progress', 'PLAN_PRD')
            THEN NULL ELSE 'in_progress / PLAN_PRD' END
        WHEN 'EXEC-TO-PLAN' THEN CASE WHEN (v_sd.status, v_phase) = ('active', 'EXEC')
            THEN NULL ELSE 'active / EXEC' END
        WHEN 'PLAN-TO-LEAD' THEN CASE WHEN (v_sd.status, v_phase) = ('active', 'EXEC_COMPLETE')
            THEN NULL ELSE 'active / EXEC_COMPLETE' END
        ELSE CASE WHEN (v_sd.status, v_phase) = ('pending_approval', 'LEAD_FINAL')
            THEN NULL ELSE 'pending_approval / LEAD_FINAL' END
    END;
    IF v_expect IS NOT NULL THEN
        RETURN leo.leo_refusal('INVALID_PHASE',
            format('%s cannot start from %s / %s; it expects %s', p_handoff_type, v_sd.status, v_phase, v_expect),
            jsonb_build_object('sd_id', v_sd_id, 'expected', v_expect, 'actual', jsonb_build_object(
                'status', v_sd.status, 'current_phase', v_phase)));
    END IF;
    v_version := coalesce(v_sd.transition_version, 1);
    IF jsonb_typeof(v_want) = 'number' AND (v_want #>> '{}') ~ '^[0-9]{1,9}$'
       AND (v_want #>> '{}')::integer <> v_version THEN
        RETURN leo.leo_refusal('VERSION_CONFLICT',
            format('%s is at transition_version %s, the caller expected %s; reload and retry',
                   v_sd_id, v_version, v_want #>> '{}'),
            jsonb_build_object('sd_id', v_sd_id, 'expected_version', (v_want #>> '{}')::integer,
                               'actual_version', v_version));
    END IF;
    v_refusal := leo.leo_adopt_claim_refusal(v_sd, p_session_id);
    IF v_refusal IS NOT NULL THEN
        RETURN v_refusal;
    END IF;
    v_narr := leo.leo_narrative(p_handoff_type, v_sd_key, v_gate, v_request, false);
    INSERT INTO public.sd_phase_handoffs (
        sd_id, from_phase, to_phase, handoff_type, status, executive_summary, deliverables_manifest,
        key_decisions, known_issues, resource_utilization, action_items, completeness_report,
        metadata, rejection_reason, created_at, rejected_at, created_by, validation_details,
        validation_score, validation_passed)
    VALUES (
        v_sd_id, v_phases[1], v_phases[2], p_handoff_type, 'rejected', v_narr[1], v_narr[2], v_narr[3],
        v_narr[4], v_narr[5], v_narr[6], v_narr[7],
        coalesce(p_transition_context -> 'metadata', '{}') || jsonb_build_object(
            'request_id', v_request, 'recorded_by', 'leo', 'actor', v_actor, 'db_role', session_user),
        coalesce(p_transition_context ->> 'rejection_reason', 'gates did not pass'),
        localtimestamp, localtimestamp, v_actor, v_gate,
        CASE WHEN jsonb_typeof(v_gate -> 'normalized_score') = 'number'
             THEN round(least(greatest((v_gate ->> 'normalized_score')::numeric, 0), 100))::integer END,
        false)
    RETURNING id INTO v_id;
    INSERT INTO leo.handoff_requests (request_id, handoff_id, sd_id, session_id)
    VALUES (v_request, v_id, v_sd_id, p_session_id);
    RETURN jsonb_build_object('success', true, 'code', 'OK', 'handoff_id', v_id, 'sd_id', v_sd_id,
                              'idempotent_hit', false);
END $$;

-- Text without the control characters their evidence trigger refuses.
CREATE OR REPLACE FUNCTION leo.leo_printable(p_text text)
RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT regexp_replace(p_text, '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]', '', 'g');
$$;

CREATE OR REPLACE FUNCTION leo.leo_printable(p_value jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT regexp_replace(p_value::text, '\\u00(0[0-8bcefBCEF]|1[0-9a-fA-F]|7[fF])', '', 'g')::jsonb;
$$;

-- Results LEO's agents produced, in their results table (phase = LEO's phase, source 'leo',
-- whole seconds, control characters stripped); the keys in leo.sub_agent_result_keys.
CREATE OR REPLACE FUNCTION leo.leo_record_sub_agent_results(p_sd_id text, p_phase text, p_results jsonb)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_count integer := 0;
    v_row   record;
    v_id    uuid;
BEGIN
    IF p_results IS NULL OR jsonb_typeof(p_results) = 'null' THEN
        RETURN 0;
    END IF;
    IF jsonb_typeof(p_results) <> 'array' THEN
        RAISE EXCEPTION 'p_sub_agent_results must be a JSON array' USING ERRCODE = '22023';
    END IF;
    FOR v_row IN
        SELECT r.* FROM jsonb_to_recordset(p_results) AS r(
            idempotency_key text, reuse_key text, code text, name text, verdict text,
            confidence integer, critical_issues jsonb, warnings jsonb, recommendations jsonb,
            detailed_analysis text, execution_time numeric, justification text, conditions jsonb,
            metadata jsonb)
        WHERE NOT EXISTS (SELECT 1 FROM leo.sub_agent_result_keys k WHERE k.idempotency_key = r.idempotency_key)
    LOOP
        INSERT INTO public.sub_agent_execution_results (
            sd_id, sub_agent_code, sub_agent_name, verdict, confidence, critical_issues, warnings,
            recommendations, detailed_analysis, execution_time, justification, conditions,
            metadata, phase, source)
        VALUES (
            p_sd_id, v_row.code, v_row.name, v_row.verdict, v_row.confidence,
            leo.leo_printable(coalesce(v_row.critical_issues, '[]')),
            leo.leo_printable(coalesce(v_row.warnings, '[]')),
            leo.leo_printable(coalesce(v_row.recommendations, '[]')),
            leo.leo_printable(coalesce(v_row.detailed_analysis, '')),
            ceil(coalesce(v_row.execution_time, 0))::integer, leo.leo_printable(v_row.justification),
            v_row.conditions,
            coalesce(v_row.metadata, '{}') || jsonb_build_object('idempotency_key', v_row.idempotency_key),
            p_phase, 'leo')
        RETURNING id INTO v_id;
        INSERT INTO leo.sub_agent_result_keys (idempotency_key, reuse_key, result_id, sd_id, phase)
        VALUES (v_row.idempotency_key, v_row.reuse_key, v_id, p_sd_id, p_phase);
        v_count := v_count + 1;
    END LOOP;
    RETURN v_count;
END $$;

CREATE OR REPLACE FUNCTION leo.fn_record_sub_agent_result(
    p_idempotency_key text, p_sd_id text, p_sub_agent_code text, p_sub_agent_name text,
    p_phase text, p_verdict text, p_confidence integer, p_critical_issues jsonb,
    p_warnings jsonb, p_recommendations jsonb, p_detailed_analysis text,
    p_execution_time numeric, p_justification text, p_conditions jsonb, p_metadata jsonb)
RETURNS uuid LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_sd_id text := leo.leo_resolve_sd_id(p_sd_id);
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('leo:result:' || p_idempotency_key, 0));
    IF leo.leo_record_sub_agent_results(v_sd_id, p_phase, jsonb_build_array(jsonb_build_object(
           'idempotency_key', p_idempotency_key, 'code', p_sub_agent_code, 'name', p_sub_agent_name,
           'verdict', p_verdict, 'confidence', p_confidence, 'critical_issues', p_critical_issues,
           'warnings', p_warnings, 'recommendations', p_recommendations,
           'detailed_analysis', p_detailed_analysis, 'execution_time', p_execution_time,
           'justification', p_justification, 'conditions', p_conditions, 'metadata', p_metadata))) = 0 THEN
        RETURN NULL;
    END IF;
    RETURN (SELECT result_id FROM leo.sub_agent_result_keys WHERE idempotency_key = p_idempotency_key);
END $$;

-- The first commit made under a request id, as it was made, or NULL: a repeated commit step
-- (a lost reply, a crashed worker) gets the verdict the database holds ("decided once"), with
-- the gate summary that was stored.
CREATE OR REPLACE FUNCTION leo.leo_recorded_commit(p_handoff_type text, p_sd_id text, p_request_id text)
RETURNS jsonb LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_sd_id text;
    v_done  leo.transition_results;
    v_id    uuid;
    v_gate  jsonb;
BEGIN
    IF p_request_id IS NULL THEN
        RETURN NULL;
    END IF;
    v_sd_id := leo.leo_resolve_sd_id(p_sd_id);
    IF v_sd_id IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO v_done FROM leo.transition_results
    WHERE request_id = p_request_id AND sd_id = v_sd_id
      AND transition_type = replace(p_handoff_type, '-', '_');
    IF FOUND THEN
        RETURN v_done.result || jsonb_build_object(
            'idempotent_hit', true,
            'decision', CASE WHEN v_done.status = 'completed' THEN 'accepted' ELSE 'refused' END,
            'gate_summary', (SELECT validation_details FROM public.sd_phase_handoffs
                             WHERE id = v_done.handoff_id));
    END IF;
    SELECT h.id, h.validation_details INTO v_id, v_gate
    FROM leo.handoff_requests q JOIN public.sd_phase_handoffs h ON h.id = q.handoff_id
    WHERE q.request_id = p_request_id AND q.sd_id = v_sd_id AND h.handoff_type = p_handoff_type
      AND h.status = 'rejected';
    IF FOUND THEN
        RETURN jsonb_build_object('success', true, 'code', 'OK', 'handoff_id', v_id,
                                  'sd_id', v_sd_id, 'idempotent_hit', true,
                                  'decision', 'rejected', 'gate_summary', v_gate);
    END IF;
    RETURN NULL;
END $$;

-- A verdict the SD's state refused at commit time (VERSION_CONFLICT, CLAIMED_BY_OTHER_SESSION,
-- INVALID_PHASE, INVALID_PRD_STATUS: it changed while the handoff ran), as native mode's
-- leo_record_refused_commit: the failed audit row with LEO's error record, the verdict and its
-- gate summary, written the way adopt mode writes audit rows (theirs keyed on the SD's uuid_id,
-- request id 'leo:<request id>'; what LEO returned in leo.transition_results). Returns the
-- refusal with the audit row's id, or the refusal alone when the request id already holds an
-- outcome.
CREATE OR REPLACE FUNCTION leo.leo_record_refused_commit(
    p_sd_id text, p_handoff_type text, p_accepted boolean, p_session_id text,
    p_context jsonb, p_refusal jsonb)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_audit   uuid := gen_random_uuid();
    v_type    text := replace(p_handoff_type, '-', '_');
    v_request text := p_context ->> 'request_id';
    v_pre     jsonb := leo.leo_sd_state(p_sd_id);
    v_uuid    uuid;
    v_code    text := p_refusal ->> 'code';
    v_details jsonb;
    v_result  jsonb;
BEGIN
    SELECT uuid_id INTO v_uuid FROM public.strategic_directives_v2 WHERE id = p_sd_id;
    IF v_request IS NULL OR v_uuid IS NULL THEN
        RETURN p_refusal;
    END IF;
    -- The transition holds this lock already when it refused on the SD's state; a call with
    -- the same request id that recorded first wins.
    PERFORM pg_advisory_xact_lock(hashtextextended('leo:request:' || v_request, 0));
    IF EXISTS (SELECT 1 FROM leo.transition_results WHERE request_id = v_request)
       OR EXISTS (SELECT 1 FROM leo.handoff_requests WHERE request_id = v_request)
       OR EXISTS (SELECT 1 FROM public.sd_transition_audit WHERE request_id = 'leo:' || v_request) THEN
        RETURN p_refusal;
    END IF;
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
                'for the claim to go stale (600 s), then run the handoff again.'
            ELSE
                format('Nothing was applied (%s). Fix the cause, then run the %s handoff again.',
                       v_code, p_handoff_type)
        END);
    v_result := p_refusal || jsonb_build_object('audit_id', v_audit, 'request_id', v_request);
    INSERT INTO public.sd_transition_audit (
        id, sd_id, transition_type, session_id, request_id, pre_state, status, error_details,
        started_at, completed_at)
    VALUES (v_audit, v_uuid, v_type, p_session_id, 'leo:' || v_request, v_pre, 'failed',
            v_details, now(), clock_timestamp());
    INSERT INTO leo.transition_results (audit_id, request_id, sd_id, transition_type, status, result, error_details)
    VALUES (v_audit, v_request, p_sd_id, v_type, 'failed', v_result, v_details);
    RETURN v_result;
END $$;

-- The commit step: the verdict (transition or rejection record) and the new result rows in one
-- statement; "decision" says which was committed, or "refused".
CREATE OR REPLACE FUNCTION leo.fn_commit_handoff(
    p_handoff_type text, p_sd_id text, p_accepted boolean, p_phase text,
    p_sub_agent_results jsonb, p_prd_id text DEFAULT NULL, p_session_id text DEFAULT NULL,
    p_transition_context jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_sd_id  text;
    v_result jsonb;
BEGIN
    IF p_accepted IS NULL THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'p_accepted must be true or false');
    END IF;
    v_result := leo.leo_recorded_commit(p_handoff_type, p_sd_id, p_transition_context ->> 'request_id');
    IF v_result IS NOT NULL THEN
        RETURN v_result;
    END IF;
    IF p_accepted THEN
        v_result := leo.leo_adopt_transition(p_handoff_type, p_sd_id, p_prd_id, p_session_id,
                                             p_transition_context);
    ELSE
        v_result := leo.fn_record_handoff_rejection(p_sd_id, p_handoff_type, p_session_id,
                                                    p_transition_context);
    END IF;
    v_result := v_result || jsonb_build_object('decision', CASE
        WHEN (v_result ->> 'success')::boolean IS NOT TRUE THEN 'refused'
        WHEN p_accepted THEN 'accepted' ELSE 'rejected' END);
    v_sd_id := leo.leo_resolve_sd_id(p_sd_id);
    IF v_sd_id IS NULL THEN
        RETURN v_result;  -- a refusal for a missing SD records nothing
    END IF;
    -- Refused by the SD's state: the failed audit row, in this transaction (native mode's rule;
    -- a CONCURRENT_LOCK or a malformed call writes nothing).
    IF v_result ->> 'code' IN ('VERSION_CONFLICT', 'CLAIMED_BY_OTHER_SESSION', 'INVALID_PHASE',
                               'INVALID_PRD_STATUS')
       AND NOT v_result ? 'audit_id' THEN
        v_result := leo.leo_record_refused_commit(v_sd_id, p_handoff_type, p_accepted, p_session_id,
                                                  p_transition_context, v_result);
    END IF;
    -- The results with the handoff or audit row this call wrote, or not at all.
    IF (v_result ->> 'success')::boolean IS TRUE OR v_result ? 'audit_id' THEN
        PERFORM leo.leo_record_sub_agent_results(v_sd_id, p_phase, p_sub_agent_results);
    END IF;
    RETURN v_result;
END $$;

-- EXEC's completion report: kept in leo.sd_exec_reports (their retrospectives have their own
-- creation rules); the stories' test results are written to their stories.
CREATE OR REPLACE FUNCTION leo.fn_record_exec_report(
    p_sd_id text, p_session_id text, p_request_id text, p_summary text, p_evidence jsonb)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_sd_id   text;
    v_id      uuid;
    v_tests   jsonb := coalesce(p_evidence -> 'test_results', '{}');
    v_unknown text[];
BEGIN
    IF p_request_id IS NULL OR btrim(p_request_id) = '' OR length(p_request_id) > 300 THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'p_request_id is required (at most 300 characters)');
    END IF;
    IF p_summary IS NULL OR btrim(p_summary) = '' THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'a completion report needs a summary');
    END IF;
    IF p_evidence IS NULL OR jsonb_typeof(p_evidence) <> 'object' OR jsonb_typeof(v_tests) <> 'object' THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'evidence must be a JSON object; evidence.test_results maps story keys to a test status');
    END IF;
    v_sd_id := leo.leo_resolve_sd_id(p_sd_id);
    IF v_sd_id IS NULL THEN
        RETURN leo.leo_refusal('SD_NOT_FOUND', format('SD not found: %s', p_sd_id));
    END IF;
    SELECT id INTO v_id FROM leo.sd_exec_reports WHERE request_id = p_request_id;
    IF FOUND THEN
        RETURN jsonb_build_object('success', true, 'code', 'OK', 'report_id', v_id, 'idempotent_hit', true);
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_each_text(v_tests) t
               WHERE t.value NOT IN ('not_created', 'created', 'passing', 'failing', 'skipped')) THEN
        RETURN leo.leo_refusal('INVALID_INPUT',
            'a test result is not one of not_created, created, passing, failing, skipped');
    END IF;
    SELECT array_agg(t.key) INTO v_unknown FROM jsonb_each_text(v_tests) t
    WHERE NOT EXISTS (SELECT 1 FROM public.user_stories s WHERE s.story_key = t.key AND s.sd_id = v_sd_id);
    IF v_unknown IS NOT NULL THEN
        RETURN leo.leo_refusal('INVALID_INPUT', format('stories not found on %s: %s', v_sd_id,
                                                       array_to_string(v_unknown, ', ')));
    END IF;
    UPDATE public.user_stories s SET e2e_test_status = t.value, updated_at = localtimestamp
    FROM jsonb_each_text(v_tests) t
    WHERE s.story_key = t.key AND s.sd_id = v_sd_id;
    INSERT INTO leo.sd_exec_reports (sd_id, session_id, request_id, summary, evidence)
    VALUES (v_sd_id, p_session_id, p_request_id, p_summary, p_evidence)
    RETURNING id INTO v_id;
    RETURN jsonb_build_object('success', true, 'code', 'OK', 'report_id', v_id, 'idempotent_hit', false);
END $$;

-- SD, PRD and story content is theirs to create and edit: their creation and edit rules
-- (required fields, type-change governance) are not LEO's.
CREATE OR REPLACE FUNCTION leo.fn_update_sd(
    p_sd_id text, p_changes jsonb, p_actor text,
    p_expected_version integer DEFAULT NULL, p_request_id text DEFAULT NULL)
RETURNS jsonb LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT leo.leo_refusal('INVALID_INPUT',
        'adopt mode (LEO_SCHEMA_MODE=adopt): SDs, PRDs and stories are created and edited with the '
        'EHG_Engineer tooling, whose rules apply to them; LEO only runs handoffs (docs/adoption.md)');
$$;
