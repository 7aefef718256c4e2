-- Shared pieces of adopt mode's functions, in schema leo. Every function pins its search_path
-- to theirs (pg_catalog, public): their trigger functions do not pin one, and run inside ours,
-- so they must resolve their own tables, never LEO's same-named views. LEO's own objects are
-- always named with leo. in front.

CREATE OR REPLACE FUNCTION leo.leo_refusal(p_code text, p_message text, p_extra jsonb DEFAULT '{}')
RETURNS jsonb LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT jsonb_build_object('success', false, 'code', p_code, 'error', p_message) || coalesce(p_extra, '{}');
$$;

-- The SD a caller names, by id or sd_key (their ids may be UUID strings); the id wins.
CREATE OR REPLACE FUNCTION leo.leo_resolve_sd_id(p_sd_id text)
RETURNS text LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT id::text FROM public.strategic_directives_v2
    WHERE id = p_sd_id OR sd_key = p_sd_id
    ORDER BY (id = p_sd_id) DESC
    LIMIT 1;
$$;

-- The actor LEO writes as: the one `leo db adopt` recorded (LEO_ADOPT_ACTOR).
CREATE OR REPLACE FUNCTION leo.leo_actor()
RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT actor FROM leo.adoption;
$$;

-- The session holding a live claim on an SD: by sd_key, active or idle, heartbeat younger
-- than their 600 s.
CREATE OR REPLACE FUNCTION leo.leo_claim_holder(p_sd_key text)
RETURNS TABLE (session_id text, heartbeat_at timestamptz)
LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT c.session_id, c.heartbeat_at FROM public.claude_sessions c
    WHERE c.sd_key = p_sd_key AND c.status IN ('active', 'idle')
      AND c.heartbeat_at > now() - interval '600 seconds'
    ORDER BY c.heartbeat_at DESC LIMIT 1;
$$;

CREATE OR REPLACE FUNCTION leo.leo_sd_state(p_canonical_sd_id text)
RETURNS jsonb LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT jsonb_build_object(
        'sd_id', sd.id, 'sd_key', sd.sd_key, 'sd_uuid', sd.uuid_id, 'sd_status', sd.status,
        'sd_phase', sd.current_phase, 'sd_version', coalesce(sd.transition_version, 1),
        'sd_progress', sd.progress_percentage, 'is_working_on', sd.is_working_on,
        'claiming_session_id', sd.claiming_session_id,
        'prd_id', prd.id, 'prd_status', prd.status, 'prd_phase', prd.phase,
        'stories', coalesce((
            SELECT jsonb_object_agg(st.status, st.n)
            FROM (SELECT coalesce(status, 'draft') AS status, count(*) AS n FROM public.user_stories
                  WHERE sd_id = sd.id GROUP BY 1) st), '{}'::jsonb))
    FROM public.strategic_directives_v2 sd
    LEFT JOIN leo.prd_pick pick ON pick.sd_id = sd.id
    LEFT JOIN public.product_requirements_v2 prd ON prd.id = pick.prd_id
    WHERE sd.id = p_canonical_sd_id;
$$;

-- The seven narrative elements their handoff rows require, generated from the gate summary
-- (the executive summary is always longer than their 50-character minimum).
CREATE OR REPLACE FUNCTION leo.leo_narrative(p_handoff_type text, p_sd_key text, p_gate jsonb,
                                             p_request_id text, p_accepted boolean)
RETURNS text[] LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, public, pg_temp AS $$
    WITH g AS (
        SELECT coalesce(p_gate -> 'gate_results', '[]') AS results,
               coalesce(p_gate ->> 'normalized_score', 'n/a') AS score,
               coalesce(p_gate ->> 'threshold', 'n/a') AS threshold
    ), names AS (
        SELECT coalesce(string_agg(coalesce(r ->> 'gate', r ->> 'name', '?')
                                   || CASE WHEN (r ->> 'passed')::boolean IS FALSE THEN ' (failed)' ELSE '' END,
                                   ', '), 'no gates') AS gates,
               count(*) AS total,
               count(*) FILTER (WHERE (r ->> 'passed')::boolean IS NOT FALSE) AS passed,
               string_agg(i, '; ') AS issues
        FROM g, jsonb_array_elements(CASE WHEN jsonb_typeof(g.results) = 'array' THEN g.results ELSE '[]' END) r
        LEFT JOIN LATERAL jsonb_array_elements_text(
            CASE WHEN jsonb_typeof(r -> 'issues') = 'array' THEN r -> 'issues' ELSE '[]' END) i ON true
    )
    SELECT ARRAY[
        format('LEO orchestrator %s of %s: the gates %s with a weighted score of %s against a threshold of %s (request %s).',
               p_handoff_type, p_sd_key, CASE WHEN p_accepted THEN 'passed' ELSE 'did not pass' END,
               g.score, g.threshold, p_request_id),
        'Gates evaluated: ' || names.gates,
        CASE WHEN p_accepted THEN format('Proceed with %s: every required gate passed.', p_handoff_type)
             ELSE format('Do not proceed with %s: a required gate failed.', p_handoff_type) END,
        coalesce('Gate issues: ' || names.issues, 'No issues reported by the gates.'),
        'Evaluated by the LEO orchestrator (Temporal workflow); see validation_details for each gate.',
        CASE p_handoff_type
            WHEN 'LEAD-TO-PLAN' THEN 'PLAN: write the PRD and the user stories.'
            WHEN 'PLAN-TO-EXEC' THEN 'EXEC: implement the user stories.'
            WHEN 'EXEC-TO-PLAN' THEN 'PLAN: verify the implementation.'
            WHEN 'PLAN-TO-LEAD' THEN 'LEAD: final approval.'
            ELSE 'None: the directive is complete.' END,
        format('%s of %s gates passed.', names.passed, names.total)]
    FROM g, names;
$$;
