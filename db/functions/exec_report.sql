-- Records EXEC's completion report in one transaction: the report row, the test results it
-- states for stories (e2e_test_status), the commits it names (SD metadata.commits) and its
-- retrospective. It changes no phase or status: that is EXEC-TO-PLAN's job. Idempotent on
-- p_request_id (the lifecycle passes the update's id), so a retried activity records once.
-- The report is gate evidence, so like a transition or an edit it takes the SD's advisory lock
-- (waiting for a transition in progress to end) and bumps transition_version: a handoff whose
-- gates judged the SD before the report fails VERSION_CONFLICT at commit instead of applying a
-- verdict to evidence it never saw (issue 17 item 3).
CREATE OR REPLACE FUNCTION fn_record_exec_report(
    p_sd_id text, p_session_id text, p_request_id text, p_summary text, p_evidence jsonb)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_sd_id  text;
    v_id     uuid;
    v_tests  jsonb := coalesce(p_evidence -> 'test_results', '{}');
    v_retro  jsonb := p_evidence -> 'retrospective';
    v_key    text;
    v_status text;
    v_unknown text[] := '{}';
    v_version integer;
BEGIN
    IF p_request_id IS NULL OR btrim(p_request_id) = '' THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_request_id is required');
    END IF;
    IF length(p_request_id) > 300 THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_request_id must be at most 300 characters');
    END IF;
    IF p_summary IS NULL OR btrim(p_summary) = '' THEN
        RETURN leo_refusal('INVALID_INPUT', 'a completion report needs a summary');
    END IF;
    IF p_evidence IS NULL OR jsonb_typeof(p_evidence) <> 'object' THEN
        RETURN leo_refusal('INVALID_INPUT', 'evidence must be a JSON object');
    END IF;
    IF jsonb_typeof(v_tests) <> 'object' THEN
        RETURN leo_refusal('INVALID_INPUT', 'evidence.test_results must map story keys to a test status');
    END IF;
    v_sd_id := leo_resolve_sd_id(p_sd_id);
    IF v_sd_id IS NULL THEN
        RETURN leo_refusal('SD_NOT_FOUND', format('SD not found: %s', p_sd_id));
    END IF;

    -- One lock order everywhere: the SD's advisory lock, the SD row, then its PRD and stories
    -- (as the transition functions do), so a report and a transition of the same SD cannot
    -- deadlock. The advisory lock is waited for, not tried: a transition holds it briefly, and
    -- an acknowledged report must not be refused for it.
    PERFORM pg_advisory_xact_lock(leo_sd_lock_key(v_sd_id));
    PERFORM 1 FROM strategic_directives_v2 WHERE id = v_sd_id FOR UPDATE;

    SELECT id INTO v_id FROM sd_exec_reports WHERE request_id = p_request_id;
    IF FOUND THEN
        RETURN jsonb_build_object('success', true, 'code', 'OK', 'report_id', v_id, 'idempotent_hit', true);
    END IF;

    -- Check everything before writing anything, so a bad report is refused whole.
    FOR v_key, v_status IN SELECT key, value FROM jsonb_each_text(v_tests) LOOP
        IF v_status NOT IN ('not_created', 'created', 'passing', 'failing', 'skipped') THEN
            RETURN leo_refusal('INVALID_INPUT', format(
                'test result %s for %s is not one of not_created, created, passing, failing, skipped',
                v_status, v_key));
        END IF;
        IF NOT EXISTS (SELECT 1 FROM user_stories WHERE story_key = v_key AND sd_id = v_sd_id) THEN
            v_unknown := v_unknown || v_key;
        END IF;
    END LOOP;
    IF cardinality(v_unknown) > 0 THEN
        RETURN leo_refusal('INVALID_INPUT', format('stories not found on %s: %s', v_sd_id,
                                                   array_to_string(v_unknown, ', ')));
    END IF;
    IF v_retro IS NOT NULL AND (jsonb_typeof(v_retro -> 'quality_score') IS DISTINCT FROM 'number'
            OR (v_retro ->> 'quality_score') !~ '^[0-9]{1,3}$'
            OR (v_retro ->> 'quality_score')::integer > 100) THEN
        RETURN leo_refusal('INVALID_INPUT', 'evidence.retrospective.quality_score must be an integer from 0 to 100');
    END IF;

    UPDATE user_stories s SET e2e_test_status = t.value, updated_at = now()
    FROM jsonb_each_text(v_tests) t
    WHERE s.story_key = t.key AND s.sd_id = v_sd_id;

    UPDATE strategic_directives_v2
    SET metadata = CASE WHEN jsonb_typeof(p_evidence -> 'commits') = 'array'
                        THEN jsonb_set(metadata, '{commits}',
                                 coalesce(metadata -> 'commits', '[]') || (p_evidence -> 'commits'))
                        ELSE metadata END,
        transition_version = transition_version + 1
    WHERE id = v_sd_id
    RETURNING transition_version INTO v_version;
    IF v_retro IS NOT NULL THEN
        INSERT INTO retrospectives (sd_id, quality_score, what_went_well, what_to_improve)
        VALUES (v_sd_id, (v_retro ->> 'quality_score')::integer,
                coalesce(v_retro -> 'what_went_well', '[]'), coalesce(v_retro -> 'what_to_improve', '[]'));
    END IF;

    INSERT INTO sd_exec_reports (sd_id, session_id, request_id, summary, evidence, transition_version)
    VALUES (v_sd_id, p_session_id, p_request_id, p_summary, p_evidence, v_version)
    RETURNING id INTO v_id;
    RETURN jsonb_build_object('success', true, 'code', 'OK', 'report_id', v_id,
                              'transition_version', v_version, 'idempotent_hit', false);
END $$;
