-- Read views of adopt mode: their rows, normalised to the shapes LEO's queries expect, under
-- the names those queries use (LEO's connections put schema leo first on the search_path).
-- Owned by the adopting role (the owner of their tables), so they read past their RLS; LEO's
-- roles get SELECT on them, never on their tables. Re-created whole on every apply.
--   NULLs: defaults LEO's models expect (phase LEAD_APPROVAL, version 1, '{}', '[]', '').
--   Naive timestamps: read in the session's time zone, the one their defaults were written in.
--   One PRD per SD: see leo.prd_pick below.
--   Claims: by sd_key, live for 600 s after the heartbeat; an idle session holding an sd_key
--   still holds the claim.
--   Results: a NULL phase reads as 'UNKNOWN'; their idempotency key is 'ehg:<id>'.
DROP VIEW IF EXISTS leo.v_active_sessions, leo.claude_sessions, leo.sd_transition_audit,
    leo.sd_phase_handoffs, leo.sub_agent_execution_results, leo.leo_sub_agents,
    leo.retrospectives, leo.user_stories, leo.product_requirements_v2, leo.prd_pick,
    leo.strategic_directives_v2 CASCADE;

CREATE VIEW leo.strategic_directives_v2 AS
SELECT sd.id::text AS id, sd.sd_key, sd.uuid_id, sd.title::text AS title,
       coalesce(sd.description, '') AS description, coalesce(sd.scope, '') AS scope,
       coalesce(sd.rationale, '') AS rationale, sd.category::text AS category,
       coalesce(sd.sd_type, 'feature')::text AS sd_type, sd.status::text AS status,
       coalesce(sd.current_phase, 'LEAD_APPROVAL')::text AS current_phase,
       coalesce(sd.priority, 'medium')::text AS priority, sd.intensity_level::text AS intensity_level,
       sd.parent_sd_id::text AS parent_sd_id,
       coalesce(sd.relationship_type, 'standalone')::text AS relationship_type,
       coalesce(sd.success_criteria, '[]') AS success_criteria,
       coalesce(sd.success_metrics, '[]') AS success_metrics,
       sd.target_application::text AS target_application,
       coalesce(sd.progress_percentage, 0) AS progress_percentage,
       coalesce(sd.is_working_on, false) AS is_working_on, sd.active_session_id,
       sd.claiming_session_id, coalesce(sd.transition_version, 1) AS transition_version,
       coalesce(sd.metadata, '{}') AS metadata, sd.completion_date::timestamptz AS completion_date,
       coalesce(sd.created_at, sd.updated_at, 'epoch')::timestamptz AS created_at,
       coalesce(sd.updated_at, sd.created_at, 'epoch')::timestamptz AS updated_at
FROM public.strategic_directives_v2 sd;

-- The PRD LEO uses for an SD, when it has several (their sd_id is neither unique nor required):
-- linked by sd_id, or by directive_id (id or key) when sd_id is NULL; a PRD that is not
-- archived, rejected or cancelled first; then the most recently updated; then the highest id.
CREATE VIEW leo.prd_pick AS
SELECT DISTINCT ON (sd.id) sd.id::text AS sd_id, p.id::text AS prd_id
FROM public.product_requirements_v2 p
JOIN public.strategic_directives_v2 sd
  ON sd.id = p.sd_id OR (p.sd_id IS NULL AND p.directive_id IN (sd.id, sd.sd_key))
ORDER BY sd.id, (p.status IN ('archived', 'rejected', 'cancelled')), p.updated_at DESC NULLS LAST,
         p.id DESC;

CREATE VIEW leo.product_requirements_v2 AS
SELECT p.id::text AS id, pick.sd_id, p.title::text AS title,
       coalesce(p.status, 'draft')::text AS status, coalesce(p.phase, 'planning')::text AS phase,
       coalesce(p.executive_summary, '') AS executive_summary,
       coalesce(p.functional_requirements, '[]') AS functional_requirements,
       coalesce(p.test_scenarios, '[]') AS test_scenarios, coalesce(p.progress, 0) AS progress,
       coalesce(p.metadata, '{}') AS metadata,
       coalesce(p.created_at, 'epoch')::timestamptz AS created_at,
       coalesce(p.updated_at, p.created_at, 'epoch')::timestamptz AS updated_at
FROM leo.prd_pick pick JOIN public.product_requirements_v2 p ON p.id = pick.prd_id;

CREATE VIEW leo.user_stories AS
SELECT s.id, s.story_key::text AS story_key, s.sd_id::text AS sd_id, s.prd_id::text AS prd_id,
       s.title::text AS title, coalesce(s.acceptance_criteria, '[]') AS acceptance_criteria,
       coalesce(s.status, 'draft')::text AS status,
       coalesce(s.validation_status, 'pending')::text AS validation_status,
       coalesce(s.e2e_test_status, 'not_created')::text AS e2e_test_status, s.e2e_test_path,
       coalesce(s.implementation_status, 'pending')::text AS implementation_status,
       s.completed_by, s.completed_at::timestamptz AS completed_at,
       coalesce(s.created_at, 'epoch')::timestamptz AS created_at,
       coalesce(s.updated_at, s.created_at, 'epoch')::timestamptz AS updated_at
FROM public.user_stories s WHERE s.sd_id IS NOT NULL;

-- Their retrospectives, and the ones EXEC's reports carried (kept in leo.sd_exec_reports).
CREATE VIEW leo.retrospectives AS
SELECT r.id, r.sd_id::text AS sd_id, r.quality_score, coalesce(r.created_at, 'epoch') AS created_at
FROM public.retrospectives r WHERE r.sd_id IS NOT NULL
UNION ALL
SELECT e.id, e.sd_id, (e.evidence #>> '{retrospective,quality_score}')::integer, e.reported_at
FROM leo.sd_exec_reports e
WHERE jsonb_typeof(e.evidence #> '{retrospective,quality_score}') = 'number';

-- Their catalogue with LEO's executor settings (leo.sub_agent_executors) per code.
CREATE VIEW leo.leo_sub_agents AS
SELECT a.code::text AS code, a.name::text AS name, coalesce(a.priority, 0) AS priority,
       coalesce(e.depends_on, '{}') AS depends_on, coalesce(e.timeout_seconds, 60) AS timeout_seconds,
       e.executor_kind, e.executor_ref, coalesce(a.active, true) AS active,
       coalesce(a.metadata, '{}') AS metadata, coalesce(e.env_passthrough, '{}') AS env_passthrough,
       coalesce(e.reuse_window_seconds, 0) AS reuse_window_seconds, e.input_parts,
       e.reuse_fingerprint
FROM public.leo_sub_agents a LEFT JOIN leo.sub_agent_executors e ON e.code = a.code;

CREATE VIEW leo.sub_agent_execution_results AS
SELECT r.id, coalesce(k.idempotency_key, 'ehg:' || r.id) AS idempotency_key, k.reuse_key,
       r.sd_id, r.sub_agent_code, coalesce(r.sub_agent_name, r.sub_agent_code) AS sub_agent_name,
       coalesce(k.phase, r.phase, 'UNKNOWN') AS phase, r.verdict, r.confidence,
       coalesce(r.critical_issues, '[]') AS critical_issues, coalesce(r.warnings, '[]') AS warnings,
       coalesce(r.recommendations, '[]') AS recommendations,
       coalesce(r.detailed_analysis, '') AS detailed_analysis,
       coalesce(r.execution_time, 0)::numeric AS execution_time, r.justification, r.conditions,
       coalesce(r.metadata, '{}') AS metadata, coalesce(r.created_at, 'epoch') AS created_at
FROM public.sub_agent_execution_results r
LEFT JOIN leo.sub_agent_result_keys k ON k.result_id = r.id
WHERE r.sd_id IS NOT NULL;

-- Their handoff rows; LEO's carry their request id and session (leo.handoff_requests) and the
-- unrounded score in validation_details.
CREATE VIEW leo.sd_phase_handoffs AS
SELECT h.id, h.sd_id::text AS sd_id, h.handoff_type::text AS handoff_type,
       h.from_phase::text AS from_phase, h.to_phase::text AS to_phase, h.status::text AS status,
       CASE WHEN q.request_id IS NOT NULL
                 AND jsonb_typeof(h.validation_details -> 'normalized_score') = 'number'
            THEN (h.validation_details ->> 'normalized_score')::numeric
            ELSE h.validation_score::numeric END AS validation_score,
       h.validation_passed, coalesce(h.validation_details, '{}') AS validation_details,
       coalesce(h.metadata, '{}') AS metadata, q.request_id, q.session_id, h.rejection_reason,
       h.accepted_at::timestamptz AS accepted_at, h.rejected_at::timestamptz AS rejected_at,
       coalesce(h.created_at, 'epoch')::timestamptz AS created_at,
       coalesce(h.metadata ->> 'db_role', NULL) AS db_role,
       coalesce(h.metadata ->> 'actor', h.created_by) AS actor, h.created_by
FROM public.sd_phase_handoffs h
LEFT JOIN leo.handoff_requests q ON q.handoff_id = h.id;

-- Their audit rows, keyed back to the SD's canonical id; LEO's (request ids 'leo:<id>') with
-- what the transition returned (leo.transition_results).
CREATE VIEW leo.sd_transition_audit AS
SELECT a.id, sd.id::text AS sd_id, a.transition_type::text AS transition_type, a.session_id,
       CASE WHEN t.audit_id IS NOT NULL THEN t.request_id ELSE a.request_id END AS request_id,
       a.pre_state, a.post_state, coalesce(a.status, 'in_progress')::text AS status,
       coalesce(t.error_details, a.error_details) AS error_details, t.result, t.handoff_id,
       coalesce(a.started_at, 'epoch') AS started_at, a.completed_at,
       t.result ->> 'db_role' AS db_role, t.result ->> 'actor' AS actor
FROM public.sd_transition_audit a
JOIN public.strategic_directives_v2 sd ON sd.uuid_id = a.sd_id
LEFT JOIN leo.transition_results t ON t.audit_id = a.id;

-- Sessions, by the SD's canonical id. A session holding an sd_key (active or idle) holds a
-- claim; it is live while its heartbeat is younger than their 600 s.
CREATE VIEW leo.claude_sessions AS
SELECT s.session_id, sd.id::text AS sd_id, s.sd_key, s.track,
       CASE WHEN s.sd_key IS NOT NULL AND s.status IN ('active', 'idle') THEN 'active'
            ELSE coalesce(s.status, 'idle') END AS status,
       coalesce(s.heartbeat_at, 'epoch') AS heartbeat_at, s.claimed_at, s.released_at,
       s.released_reason AS release_reason, coalesce(s.metadata, '{}') AS metadata
FROM public.claude_sessions s
LEFT JOIN public.strategic_directives_v2 sd ON sd.sd_key = s.sd_key;

CREATE VIEW leo.v_active_sessions AS
SELECT s.*, extract(epoch FROM (now() - s.heartbeat_at))::integer AS heartbeat_age_seconds,
       CASE WHEN s.status = 'released' THEN 'released'
            WHEN s.heartbeat_at < now() - interval '600 seconds' THEN 'stale'
            WHEN s.sd_id IS NULL THEN 'idle'
            ELSE 'active' END AS computed_status
FROM leo.claude_sessions s;
