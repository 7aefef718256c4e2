-- The snapshot step's reads in one call (issue 19, R2): everything a handoff decides on, from
-- one snapshot (a STABLE function reads with its calling statement's snapshot), and a
-- read-only precheck of the transition's precondition in place of a dry run that wrote and
-- rolled back the whole transition.
--
-- Returns one object:
--   accepted        this handoff's accepted record (with its audit row's result), or null: only
--                   a record the orchestrator gated (as db/snapshots.py ACCEPTED_HANDOFF_SQL)
--   refusal         when nothing was accepted: what the transition would refuse now, or null.
--                   The handoff's own precondition helper (leo_<handoff>_precondition, the one
--                   its transition calls), then the claim check: the same codes as the
--                   transition's. No lock is taken, so a transition in flight does not refuse.
--   sd, prd         the rows (null when absent)
--   stories, handoffs, evidence, retrospectives, catalogue   arrays of rows
--   now             the read time
--   recorded        the results already recorded under the given idempotency keys (computed
--                   by the caller, activities/agent_inputs.py)
-- Times are UTC (the function sets TimeZone), so they read back as the pool's rows did.
CREATE OR REPLACE FUNCTION fn_prepare_handoff(
    p_handoff_type text, p_sd_id text, p_session_id text DEFAULT NULL,
    p_evidence_hours integer DEFAULT 24, p_idempotency_keys text[] DEFAULT '{}')
RETURNS jsonb LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    v_sd       strategic_directives_v2;
    v_prd      product_requirements_v2;
    v_accepted jsonb;
    v_refusal  jsonb;
    v_state    jsonb;
BEGIN
    SELECT * INTO v_sd FROM strategic_directives_v2 WHERE id = leo_resolve_sd_id(p_sd_id);
    IF v_sd.id IS NOT NULL THEN
        SELECT * INTO v_prd FROM product_requirements_v2 WHERE sd_id = v_sd.id;
        SELECT jsonb_build_object(
                   'handoff_id', h.id::text, 'audit_id', a.id::text, 'request_id', h.request_id,
                   'validation_score', h.validation_score::float8,
                   'validation_details', h.validation_details, 'metadata', h.metadata,
                   'accepted_at', h.accepted_at, 'result', a.result)
        INTO v_accepted
        FROM sd_phase_handoffs h
        JOIN sd_transition_audit a ON a.request_id = h.request_id AND a.status = 'completed'
        WHERE h.sd_id = v_sd.id AND h.handoff_type = p_handoff_type AND h.status = 'accepted'
          AND h.validation_passed AND h.validation_details -> 'passed' = 'true'::jsonb
          AND h.metadata ->> 'workflow_id' = p_handoff_type || ':' || h.sd_id
          AND h.request_id = (h.metadata ->> 'workflow_id') || '/' || (h.metadata ->> 'run_id')
        ORDER BY h.accepted_at DESC NULLS LAST, h.created_at DESC
        LIMIT 1;
    END IF;

    IF v_accepted IS NULL THEN
        -- The transition's own checks, in its order, without its locks and writes.
        v_refusal := leo_transition_args(p_sd_id, p_session_id, '{"request_id": "precheck"}');
        IF v_refusal IS NULL AND v_sd.id IS NULL THEN
            v_refusal := leo_refusal('SD_NOT_FOUND', format('SD not found: %s', p_sd_id),
                                     jsonb_build_object('sd_id', p_sd_id));
        END IF;
        IF v_refusal IS NULL THEN
            v_state := jsonb_build_object(
                'sd_id', v_sd.id, 'prd_id', v_prd.id, 'session_id', p_session_id,
                'handoff_type', p_handoff_type, 'sd', to_jsonb(v_sd), 'prd', to_jsonb(v_prd),
                'context', '{}'::jsonb);
            v_refusal := CASE p_handoff_type
                WHEN 'LEAD-TO-PLAN' THEN leo_lead_to_plan_precondition(v_state)
                WHEN 'PLAN-TO-EXEC' THEN leo_plan_to_exec_precondition(v_state)
                WHEN 'EXEC-TO-PLAN' THEN leo_exec_to_plan_precondition(v_state)
                WHEN 'PLAN-TO-LEAD' THEN leo_plan_to_lead_precondition(v_state)
                WHEN 'LEAD-FINAL-APPROVAL' THEN leo_lead_final_approval_precondition(v_state)
                ELSE leo_refusal('INVALID_INPUT', format('unknown handoff type %s', p_handoff_type))
            END;
            IF v_refusal IS NULL THEN
                v_refusal := leo_transition_guard(v_state);
            END IF;
        END IF;
    END IF;

    RETURN jsonb_build_object(
        'accepted', v_accepted,
        'refusal', v_refusal,
        'sd', CASE WHEN v_sd.id IS NOT NULL THEN to_jsonb(v_sd) END,
        'prd', CASE WHEN v_prd.id IS NOT NULL THEN to_jsonb(v_prd) END,
        'stories', coalesce((
            SELECT jsonb_agg(to_jsonb(u) ORDER BY u.story_key)
            FROM user_stories u WHERE u.sd_id = v_sd.id), '[]'),
        -- The newest accepted record of each handoff type (the prerequisite gates need it
        -- however many rejected rows came after), plus the 50 newest rows of any status.
        'handoffs', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'handoff_type', x.handoff_type, 'status', x.status,
                       'validation_score', x.validation_score, 'created_at', x.created_at)
                   ORDER BY x.created_at DESC)
            FROM ((SELECT DISTINCT ON (handoff_type) handoff_type, status,
                          validation_score::float8 AS validation_score, created_at
                   FROM sd_phase_handoffs
                   WHERE sd_id = v_sd.id AND status = 'accepted'
                   ORDER BY handoff_type, created_at DESC)
                  UNION
                  (SELECT handoff_type, status, validation_score::float8, created_at
                   FROM sd_phase_handoffs WHERE sd_id = v_sd.id
                   ORDER BY created_at DESC LIMIT 50)) x), '[]'),
        -- The newest result per agent and phase within the evidence window: evidence counts
        -- only in its own phase.
        'evidence', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'sub_agent_code', e.sub_agent_code, 'phase', e.phase,
                       'verdict', e.verdict, 'confidence', e.confidence,
                       'created_at', e.created_at)
                   ORDER BY e.sub_agent_code, e.phase)
            FROM (SELECT DISTINCT ON (sub_agent_code, phase) sub_agent_code, phase, verdict,
                         confidence, created_at
                  FROM sub_agent_execution_results
                  WHERE sd_id = v_sd.id
                    AND created_at > now() - make_interval(hours => p_evidence_hours)
                  ORDER BY sub_agent_code, phase, created_at DESC) e), '[]'),
        'retrospectives', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'quality_score', r.quality_score, 'created_at', r.created_at)
                   ORDER BY r.created_at)
            FROM retrospectives r WHERE r.sd_id = v_sd.id), '[]'),
        'catalogue', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'code', c.code, 'name', c.name, 'priority', c.priority,
                       'depends_on', c.depends_on, 'timeout_seconds', c.timeout_seconds,
                       'executor_kind', c.executor_kind, 'executor_ref', c.executor_ref,
                       'metadata', c.metadata, 'env_passthrough', c.env_passthrough,
                       'reuse_window_seconds', c.reuse_window_seconds,
                       'input_parts', c.input_parts, 'reuse_fingerprint', c.reuse_fingerprint))
            FROM leo_sub_agents c WHERE c.active), '[]'),
        'now', now(),
        'recorded', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'idempotency_key', r.idempotency_key, 'id', r.id, 'verdict', r.verdict,
                       'confidence', r.confidence, 'critical_issues', r.critical_issues,
                       'warnings', r.warnings, 'recommendations', r.recommendations,
                       'detailed_analysis', r.detailed_analysis,
                       'execution_time', r.execution_time::float8,
                       'justification', r.justification, 'conditions', r.conditions))
            FROM sub_agent_execution_results r
            WHERE r.idempotency_key = ANY (p_idempotency_keys)), '[]'));
END $$;
