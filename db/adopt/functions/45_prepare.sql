-- The snapshot step's reads in one call, as native mode's fn_prepare_handoff (same name,
-- arguments and result): the accepted record LEO's gates made, the precheck (what the
-- transition would refuse now, read-only), the SD, PRD, stories, handoffs, evidence,
-- retrospectives and catalogue through the views of schema leo, and the results recorded under
-- the caller's idempotency keys.
CREATE OR REPLACE FUNCTION leo.fn_prepare_handoff(
    p_handoff_type text, p_sd_id text, p_session_id text DEFAULT NULL,
    p_evidence_hours integer DEFAULT 24, p_idempotency_keys text[] DEFAULT '{}')
RETURNS jsonb LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    v_sd_id    text := leo.leo_resolve_sd_id(p_sd_id);
    v_their_sd public.strategic_directives_v2;
    v_their_prd public.product_requirements_v2;
    v_sd       jsonb;
    v_prd      jsonb;
    v_accepted jsonb;
    v_refusal  jsonb;
BEGIN
    IF v_sd_id IS NOT NULL THEN
        SELECT to_jsonb(s) INTO v_sd FROM leo.strategic_directives_v2 s WHERE s.id = v_sd_id;
        SELECT to_jsonb(p) INTO v_prd FROM leo.product_requirements_v2 p WHERE p.sd_id = v_sd_id;
        SELECT jsonb_build_object(
                   'handoff_id', h.id::text, 'audit_id', a.id::text, 'request_id', h.request_id,
                   'validation_score', h.validation_score::float8,
                   'validation_details', h.validation_details, 'metadata', h.metadata,
                   'accepted_at', h.accepted_at, 'result', a.result)
        INTO v_accepted
        FROM leo.sd_phase_handoffs h
        JOIN leo.sd_transition_audit a ON a.request_id = h.request_id AND a.status = 'completed'
        WHERE h.sd_id = v_sd_id AND h.handoff_type = p_handoff_type AND h.status = 'accepted'
          AND h.validation_passed AND h.validation_details -> 'passed' = 'true'::jsonb
          AND h.metadata ->> 'workflow_id' = p_handoff_type || ':' || h.sd_id
          AND h.request_id = (h.metadata ->> 'workflow_id') || '/' || (h.metadata ->> 'run_id')
        ORDER BY h.accepted_at DESC NULLS LAST, h.created_at DESC
        LIMIT 1;
    END IF;
    IF v_accepted IS NULL THEN
        IF p_sd_id IS NULL OR btrim(p_sd_id) = '' OR length(p_sd_id) > 200 THEN
            v_refusal := leo.leo_refusal('INVALID_INPUT', 'p_sd_id is required (at most 200 characters)');
        ELSIF p_session_id IS NOT NULL AND (btrim(p_session_id) = '' OR length(p_session_id) > 200) THEN
            v_refusal := leo.leo_refusal('INVALID_INPUT', 'p_session_id must be NULL or 1 to 200 characters');
        ELSIF v_sd_id IS NULL THEN
            v_refusal := leo.leo_refusal('SD_NOT_FOUND', format('SD not found: %s', p_sd_id),
                                         jsonb_build_object('sd_id', p_sd_id));
        ELSE
            SELECT * INTO v_their_sd FROM public.strategic_directives_v2 WHERE id = v_sd_id;
            SELECT * INTO v_their_prd FROM public.product_requirements_v2
            WHERE id = (SELECT prd_id FROM leo.prd_pick WHERE sd_id = v_sd_id);
            v_refusal := coalesce(leo.leo_adopt_precondition(p_handoff_type, v_their_sd, v_their_prd),
                                  leo.leo_adopt_claim_refusal(v_their_sd, p_session_id));
        END IF;
    END IF;
    RETURN jsonb_build_object(
        'accepted', v_accepted,
        'refusal', v_refusal,
        'sd', v_sd,
        'prd', v_prd,
        'stories', coalesce((
            SELECT jsonb_agg(to_jsonb(u) ORDER BY u.story_key)
            FROM leo.user_stories u WHERE u.sd_id = v_sd_id), '[]'),
        'handoffs', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'handoff_type', x.handoff_type, 'status', x.status,
                       'validation_score', x.validation_score, 'created_at', x.created_at)
                   ORDER BY x.created_at DESC)
            FROM ((SELECT DISTINCT ON (handoff_type) handoff_type, status,
                          validation_score::float8 AS validation_score, created_at
                   FROM leo.sd_phase_handoffs
                   WHERE sd_id = v_sd_id AND status = 'accepted'
                   ORDER BY handoff_type, created_at DESC)
                  UNION
                  (SELECT handoff_type, status, validation_score::float8, created_at
                   FROM leo.sd_phase_handoffs WHERE sd_id = v_sd_id
                   ORDER BY created_at DESC LIMIT 50)) x), '[]'),
        'evidence', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'sub_agent_code', e.sub_agent_code, 'phase', e.phase,
                       'verdict', e.verdict, 'confidence', e.confidence,
                       'created_at', e.created_at))
            FROM (SELECT DISTINCT ON (sub_agent_code, phase) sub_agent_code, phase, verdict,
                         confidence, created_at
                  FROM leo.sub_agent_execution_results
                  WHERE sd_id = v_sd_id
                    AND created_at > now() - make_interval(hours => p_evidence_hours)
                  ORDER BY sub_agent_code, phase, created_at DESC) e), '[]'),
        'retrospectives', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'quality_score', r.quality_score, 'created_at', r.created_at)
                   ORDER BY r.created_at)
            FROM leo.retrospectives r WHERE r.sd_id = v_sd_id), '[]'),
        'catalogue', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'code', c.code, 'name', c.name, 'priority', c.priority,
                       'depends_on', c.depends_on, 'timeout_seconds', c.timeout_seconds,
                       'executor_kind', c.executor_kind, 'executor_ref', c.executor_ref,
                       'metadata', c.metadata, 'env_passthrough', c.env_passthrough,
                       'reuse_window_seconds', c.reuse_window_seconds,
                       'input_parts', c.input_parts, 'reuse_fingerprint', c.reuse_fingerprint))
            FROM leo.leo_sub_agents c WHERE c.active), '[]'),
        'now', now(),
        'recorded', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'idempotency_key', r.idempotency_key, 'id', r.id, 'verdict', r.verdict,
                       'confidence', r.confidence, 'critical_issues', r.critical_issues,
                       'warnings', r.warnings, 'recommendations', r.recommendations,
                       'detailed_analysis', r.detailed_analysis,
                       'execution_time', r.execution_time::float8,
                       'justification', r.justification, 'conditions', r.conditions))
            FROM leo.sub_agent_execution_results r
            WHERE r.idempotency_key = ANY (p_idempotency_keys)), '[]'));
END $$;
