-- Synthetic rows in the shapes an EHG_Engineer database holds: SDs in every phase (human-key
-- ids and UUID ids), NULLs where the schema allows them, two PRDs for one SD and one linked only
-- through directive_id, repeated and rejected handoffs, their audit rows, results with NULL and
-- handoff-type phases, and active, idle, stale and released sessions. Nothing here is real data.

INSERT INTO strategic_directives_v2 (id, uuid_id, sd_key, title, status, category, priority,
    description, rationale, scope, current_phase, sd_type, quality_checked, success_criteria,
    transition_version, metadata, created_by)
SELECT CASE WHEN n % 2 = 0 THEN 'SD-FIX-' || lpad(n::text, 3, '0') ELSE md5('ehg-sd-' || n)::uuid::text END,
       md5('ehg-uuid-' || n)::uuid,
       'SD-FIX-' || lpad(n::text, 3, '0'),
       'Fixture directive ' || n,
       (ARRAY['draft', 'active', 'active', 'active', 'pending_approval', 'in_progress', 'active',
              'active', 'active', 'completed', 'cancelled'])[n],
       'infrastructure', 'medium', 'A synthetic directive.', 'For the adoption tests.', 'Fixture scope.',
       phase, 'infrastructure', n % 3 <> 0,
       CASE WHEN n % 2 = 0 THEN '["works"]'::jsonb END,
       CASE WHEN n = 4 THEN NULL ELSE 1 END,
       CASE WHEN n = 6 THEN NULL ELSE '{}'::jsonb END,
       'fixture'
FROM unnest(ARRAY['LEAD', 'LEAD_APPROVAL', 'LEAD_COMPLETE', 'LEAD_FINAL', 'LEAD_FINAL_APPROVAL',
                  'PLAN_PRD', 'PLAN_VERIFICATION', 'EXEC', 'EXEC_COMPLETE', 'COMPLETED', 'CANCELLED'])
     WITH ORDINALITY AS p(phase, n);

-- An SD with a NULL phase, and a parent with a child.
INSERT INTO strategic_directives_v2 (id, sd_key, title, status, category, priority, description,
    rationale, scope, current_phase, relationship_type)
VALUES ('SD-FIX-NULLS-001', 'SD-FIX-NULLS-001', 'Nulls', 'draft', 'feature', 'low', 'd', 'r', 's', NULL, NULL),
       ('SD-FIX-PARENT-001', 'SD-FIX-PARENT-001', 'Parent', 'active', 'orchestrator', 'high', 'd', 'r', 's',
        'EXEC', 'parent');
INSERT INTO strategic_directives_v2 (id, sd_key, title, status, category, priority, description,
    rationale, scope, current_phase, relationship_type, parent_sd_id)
VALUES ('SD-FIX-CHILD-001', 'SD-FIX-CHILD-001', 'Child', 'draft', 'feature', 'medium', 'd', 'r', 's',
        'LEAD_APPROVAL', 'child', 'SD-FIX-PARENT-001');

-- Two PRDs for SD-FIX-006 (PLAN_PRD), the older one archived; one PRD linked by directive_id only.
INSERT INTO product_requirements_v2 (id, sd_id, directive_id, title, status, functional_requirements,
    acceptance_criteria, test_scenarios, created_at, updated_at)
VALUES ('PRD-SD-FIX-006', 'SD-FIX-006', 'SD-FIX-006', 'Old PRD', 'archived', '["a","b","c"]', '["x"]', '["t"]',
        '2026-01-01 10:00', '2026-01-02 10:00'),
       ('PRD-SD-FIX-006-V2', 'SD-FIX-006', 'SD-FIX-006', 'New PRD', 'planning', '["a","b","c"]', '["x"]', '["t"]',
        '2026-02-01 10:00', '2026-02-02 10:00'),
       ('PRD-SD-FIX-008', NULL, md5('ehg-sd-' || 9)::uuid::text, 'Directive-only PRD', 'in_progress',
        '["a","b","c"]', '["x"]', '["t"]', '2026-02-01 10:00', '2026-02-01 10:00');

INSERT INTO user_stories (story_key, prd_id, sd_id, title, user_role, user_want, user_benefit, status,
    validation_status, e2e_test_status, implementation_context)
VALUES ('SD-FIX-006:US-001', 'PRD-SD-FIX-006-V2', 'SD-FIX-006', 'Story one', 'operator', 'to see it',
        'so it is known', 'ready', 'pending', 'not_created', 'Context for story one.'),
       ('SD-FIX-006:US-002', 'PRD-SD-FIX-006-V2', 'SD-FIX-006', 'Story two', 'operator', 'to use it',
        'so it helps', 'draft', NULL, NULL, NULL);

-- Repeated and rejected handoffs (their trusted actors), and the audit rows of their RPC.
INSERT INTO sd_phase_handoffs (sd_id, from_phase, to_phase, handoff_type, status, executive_summary,
    deliverables_manifest, key_decisions, known_issues, resource_utilization, action_items,
    completeness_report, created_by, validation_score, created_at, accepted_at, rejected_at,
    rejection_reason)
VALUES ('SD-FIX-006', 'LEAD', 'PLAN', 'LEAD-TO-PLAN', 'accepted',
        'The first LEAD-TO-PLAN handoff of this fixture directive, accepted.', 'd', 'k', 'none', 'r', 'a', 'c',
        'SYSTEM_MIGRATION', 92, '2026-01-05 09:00', '2026-01-05 09:00', NULL, NULL),
       ('SD-FIX-006', 'LEAD', 'PLAN', 'LEAD-TO-PLAN', 'accepted',
        'The same handoff type accepted a second time after a regression.', 'd', 'k', 'none', 'r', 'a', 'c',
        'SYSTEM_MIGRATION', 95, '2026-02-05 09:00', '2026-02-05 09:00', NULL, NULL),
       ('SD-FIX-006', 'PLAN', 'EXEC', 'PLAN-TO-EXEC', 'rejected', 'short', '', '', '', '', '', NULL,
        'UNIFIED-HANDOFF-SYSTEM', 0, '2026-02-06 09:00', NULL, '2026-02-06 09:00', 'PRD quality below threshold'),
       ('SD-FIX-010', 'LEAD', 'COMPLETED', 'BYPASS-COMPLETION', 'accepted',
        'Administrative completion of a directive that predates the handoff system.', 'd', 'k', 'n', 'r', 'a', 'c',
        'ADMIN_OVERRIDE', NULL, '2026-01-10 09:00', '2026-01-10 09:00', NULL, NULL);

INSERT INTO leo_handoff_executions (sd_id, handoff_type, from_agent, to_agent, status, validation_score, created_by)
VALUES ('SD-FIX-006', 'LEAD-TO-PLAN', 'LEAD', 'PLAN', 'accepted', 95, 'UNIFIED-HANDOFF-SYSTEM'),
       ('SD-FIX-010', 'LEAD-FINAL-APPROVAL', 'LEAD', 'LEAD', 'accepted', 100, 'UNIFIED-HANDOFF-SYSTEM');

INSERT INTO sd_transition_audit (sd_id, transition_type, session_id, request_id, pre_state, post_state,
    status, started_at, completed_at)
VALUES (md5('ehg-uuid-9')::uuid, 'EXEC_TO_PLAN', 'session_0a1b2c3d_tty1_101', 'SD-FIX-009-session_0a1b2c3d_tty1_101-1767600000.1',
        '{"sd_phase": "EXEC"}', '{"sd_phase": "EXEC_COMPLETE"}', 'completed', '2026-01-05 09:00+00', '2026-01-05 09:00+00'),
       (md5('ehg-uuid-6')::uuid, 'LEAD_TO_PLAN', 'session_0a1b2c3d_tty1_101', 'SD-FIX-006-session_0a1b2c3d_tty1_101-1767600100.2',
        '{"sd_phase": "LEAD_APPROVAL"}', NULL, 'in_progress', '2026-01-05 09:01+00', NULL);

INSERT INTO leo_sub_agents (name, code, priority, activation_type, metadata)
VALUES ('Their security agent', 'SECURITY', 90, 'automatic', '{}'),
       ('Their testing agent', 'TESTING', 85, 'automatic', '{}'),
       ('Their database agent', 'DATABASE', 80, 'automatic', NULL),
       ('Their stories agent', 'STORIES', 60, 'automatic', '{}'),
       ('Their design agent', 'DESIGN', 70, 'manual', '{}'),
       ('Their retro agent', 'RETRO', NULL, 'automatic', '{}'),
       ('Their own agent', 'CONTEXT_WEAVER', 10, 'manual', '{}'),
       ('Their validation agent', 'VALIDATION', 80, 'automatic', '{}'),
       ('Their github agent', 'GITHUB', 70, 'automatic', '{}'),
       ('Their risk agent', 'RISK', 60, 'automatic', '{}'),
       ('Their docs agent', 'DOCMON', 50, 'automatic', '{}'),
       ('Their performance agent', 'PERFORMANCE', 80, 'manual', '{}'),
       ('Their UAT agent', 'UAT', 70, 'manual', '{}'),
       ('Their API agent', 'API', 70, 'manual', '{}'),
       ('Their regression agent', 'REGRESSION', 70, 'manual', '{}'),
       ('Their dependency agent', 'DEPENDENCY', 50, 'manual', '{}');

INSERT INTO sub_agent_execution_results (sd_id, sub_agent_code, sub_agent_name, verdict, confidence,
    detailed_analysis, execution_time, phase, source, metadata, invocation_id)
VALUES ('SD-FIX-006', 'SECURITY', 'Their security agent', 'PASS', 90, 'ok', 3, NULL, 'manual', '{}', NULL),
       ('SD-FIX-006', 'TESTING', 'Their testing agent', 'WARNING', 70, 'flaky', 12, 'PLAN-TO-EXEC', 'hook',
        '{"phase": "PLAN-TO-EXEC"}', 'inv-0001'),
       ('SD-FIX-006', 'DATABASE', NULL, 'PASS', 80, NULL, NULL, 'PLAN_PRD', 'manual', NULL, NULL),
       (NULL, 'RETRO', 'Their retro agent', 'PASS', 100, 'orphan', 1, NULL, 'manual', '{}', NULL);

INSERT INTO retrospectives (sd_id, retro_type, title, target_application, learning_category, quality_score)
VALUES ('SD-FIX-010', 'SD_COMPLETION', 'Fixture retro', 'EHG_Engineer', 'PROCESS_IMPROVEMENT', 80);

-- Sessions: an active claim, an idle session holding a claim, a stale claim, a released one,
-- and an unclaimed registered session.
INSERT INTO claude_sessions (session_id, sd_key, track, status, heartbeat_at, claimed_at, released_reason,
    released_at, hostname)
VALUES ('session_0a1b2c3d_tty1_101', 'SD-FIX-008', 'A', 'active', now(), now() - interval '5 minutes',
        NULL, NULL, 'host-a'),
       ('session_1b2c3d4e_tty2_202', 'SD-FIX-007', 'B', 'idle', now() - interval '2 minutes',
        now() - interval '1 hour', NULL, NULL, 'host-b'),
       ('session_2c3d4e5f_tty3_303', 'SD-FIX-003', 'C', 'active', now() - interval '2 hours',
        now() - interval '3 hours', NULL, NULL, 'host-c'),
       ('session_3d4e5f6a_tty4_404', NULL, 'A', 'released', now() - interval '1 day',
        now() - interval '2 days', 'claim_switch', now() - interval '1 day', 'host-d'),
       ('session_4e5f6a7b_tty5_505', NULL, NULL, 'idle', now(), NULL, NULL, NULL, 'host-e');
UPDATE strategic_directives_v2 SET is_working_on = true, claiming_session_id = c.session_id,
    active_session_id = c.session_id
FROM claude_sessions c
WHERE c.sd_key = strategic_directives_v2.sd_key AND c.status IN ('active', 'idle');
