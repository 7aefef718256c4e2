-- The EHG_Engineer tables LEO touches, written for these tests from the documented schema facts
-- (column names, types, nullability, defaults, keys, CHECK predicates, RLS policies) of the
-- public reference docs. Only the columns that matter to LEO, plus enough of the others that
-- creation rules and "columns we do not know" are real. Their timestamps are naive where
-- theirs are. Loaded as ehg_owner, so that role owns every object.

CREATE TABLE strategic_directives_v2 (
    id                  varchar(50) PRIMARY KEY,
    uuid_id             uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    sd_key              text NOT NULL UNIQUE,
    sd_code_user_facing varchar(100),
    title               varchar(500) NOT NULL,
    version             varchar(20) DEFAULT '1.0',
    status              varchar(50) NOT NULL CHECK (status IN (
                            'draft', 'active', 'in_progress', 'planning', 'review',
                            'pending_approval', 'completed', 'deferred', 'cancelled')),
    category            varchar(50) NOT NULL,
    priority            varchar(20) NOT NULL CHECK (priority IN ('critical', 'high', 'medium', 'low')),
    description         text NOT NULL,
    rationale           text NOT NULL,
    scope               text NOT NULL,
    current_phase       varchar(50) DEFAULT 'LEAD_APPROVAL' CHECK (current_phase IN (
                            'LEAD', 'LEAD_APPROVAL', 'LEAD_COMPLETE', 'LEAD_FINAL',
                            'LEAD_FINAL_APPROVAL', 'PLAN_PRD', 'PLAN_VERIFICATION', 'EXEC',
                            'EXEC_COMPLETE', 'COMPLETED', 'CANCELLED')),
    sd_type             varchar(50) NOT NULL DEFAULT 'feature' CHECK (sd_type IN (
                            'feature', 'bugfix', 'database', 'infrastructure', 'security',
                            'refactor', 'documentation', 'orchestrator', 'performance',
                            'enhancement', 'docs', 'discovery_spike', 'implementation',
                            'ux_debt', 'uat')),
    intensity_level     varchar(20) CHECK (intensity_level IN ('cosmetic', 'structural', 'architectural')),
    parent_sd_id        varchar(50) REFERENCES strategic_directives_v2 (id),
    relationship_type   varchar(20) DEFAULT 'standalone'
                            CHECK (relationship_type IN ('standalone', 'parent', 'child')),
    success_criteria    jsonb CHECK (success_criteria IS NULL
                            OR (jsonb_typeof(success_criteria) = 'array'
                                AND jsonb_array_length(success_criteria) > 0)),
    success_metrics     jsonb CHECK (success_metrics IS NULL
                            OR (jsonb_typeof(success_metrics) = 'array'
                                AND jsonb_array_length(success_metrics) > 0)),
    target_application  varchar(20),
    sequence_rank       integer,
    progress            integer DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    progress_percentage integer DEFAULT 0 CHECK (progress_percentage BETWEEN 0 AND 100),
    is_working_on       boolean DEFAULT false,
    active_session_id   text,
    claiming_session_id text,
    quality_checked     boolean DEFAULT false,
    transition_version  integer DEFAULT 1,
    metadata            jsonb DEFAULT '{}',
    completion_date     timestamp without time zone,
    created_by          varchar(100),
    created_at          timestamp without time zone DEFAULT CURRENT_TIMESTAMP,
    updated_at          timestamp without time zone DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_sd_status ON strategic_directives_v2 (status);

CREATE TABLE product_requirements_v2 (
    id                      varchar(100) PRIMARY KEY,
    directive_id            varchar(50),
    sd_id                   varchar(150) REFERENCES strategic_directives_v2 (id),
    title                   varchar(500) NOT NULL,
    version                 varchar(20) DEFAULT '1.0',
    status                  varchar(50) DEFAULT 'draft' CHECK (status IN (
                                'draft', 'planning', 'in_progress', 'testing', 'verification',
                                'approved', 'completed', 'archived', 'rejected', 'on_hold',
                                'cancelled')),
    category                varchar(50) NOT NULL DEFAULT 'technical',
    priority                varchar(20) NOT NULL DEFAULT 'high',
    executive_summary       text,
    functional_requirements jsonb DEFAULT '[]'
                                CHECK (jsonb_array_length(functional_requirements) >= 3),
    acceptance_criteria     jsonb DEFAULT '[]' CHECK (jsonb_array_length(acceptance_criteria) >= 1),
    test_scenarios          jsonb DEFAULT '[]' CHECK (jsonb_array_length(test_scenarios) >= 1),
    phase                   varchar(50) DEFAULT 'planning',
    progress                integer DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    metadata                jsonb DEFAULT '{}',
    created_by              varchar(100),
    updated_by              varchar(100),
    created_at              timestamp without time zone DEFAULT CURRENT_TIMESTAMP,
    updated_at              timestamp without time zone DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_prd_sd_id ON product_requirements_v2 (sd_id);

CREATE TABLE user_stories (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    story_key              varchar(100) NOT NULL UNIQUE CHECK (story_key ~ '^[A-Z0-9-]+:US-[0-9]{3,}$'),
    prd_id                 varchar(100) REFERENCES product_requirements_v2 (id),
    sd_id                  varchar(150) REFERENCES strategic_directives_v2 (id),
    title                  varchar(500) NOT NULL,
    user_role              varchar(100) NOT NULL,
    user_want              text NOT NULL,
    user_benefit           text NOT NULL,
    acceptance_criteria    jsonb DEFAULT '[]',
    implementation_context text CHECK (implementation_context IS NULL OR length(implementation_context) > 10),
    status                 varchar(50) DEFAULT 'draft' CHECK (status IN (
                               'draft', 'ready', 'in_progress', 'testing', 'completed', 'blocked')),
    validation_status      varchar(50) DEFAULT 'pending' CHECK (validation_status IN (
                               'pending', 'in_progress', 'validated', 'failed', 'skipped')),
    e2e_test_status        varchar(50) DEFAULT 'not_created' CHECK (e2e_test_status IN (
                               'not_created', 'created', 'passing', 'failing', 'skipped')),
    e2e_test_path          text,
    implementation_status  varchar(50) DEFAULT 'pending',
    completed_by           text,
    completed_at           timestamp without time zone,
    created_at             timestamp without time zone DEFAULT CURRENT_TIMESTAMP,
    updated_at             timestamp without time zone DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_user_stories_sd_id ON user_stories (sd_id);

CREATE TABLE retrospectives (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sd_id                  varchar(50) REFERENCES strategic_directives_v2 (id),
    retro_type             varchar(50) NOT NULL,
    title                  text NOT NULL,
    target_application     text NOT NULL,
    learning_category      text NOT NULL,
    quality_score          integer NOT NULL CHECK (quality_score BETWEEN 0 AND 100),
    what_went_well         jsonb DEFAULT '[]',
    what_needs_improvement jsonb DEFAULT '[]',
    created_at             timestamp with time zone DEFAULT now()
);

CREATE TABLE leo_sub_agents (
    id              varchar(50) PRIMARY KEY DEFAULT gen_random_uuid()::text,
    name            varchar(100) NOT NULL,
    code            varchar(50) NOT NULL UNIQUE,
    description     text,
    activation_type varchar(20) DEFAULT 'automatic' CHECK (activation_type IN ('automatic', 'manual')),
    priority        integer DEFAULT 0,
    script_path     text,
    active          boolean DEFAULT true,
    metadata        jsonb DEFAULT '{}',
    created_at      timestamp with time zone DEFAULT now()
);

CREATE TABLE sub_agent_execution_results (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sd_id             text REFERENCES strategic_directives_v2 (id),
    sub_agent_code    text NOT NULL,
    sub_agent_name    text,
    verdict           text NOT NULL CONSTRAINT valid_verdict CHECK (verdict IN (
                          'PASS', 'FAIL', 'BLOCKED', 'CONDITIONAL_PASS', 'WARNING',
                          'MANUAL_REQUIRED', 'PENDING', 'ERROR')),
    confidence        integer NOT NULL CHECK (confidence BETWEEN 0 AND 100),
    critical_issues   jsonb DEFAULT '[]' CHECK (jsonb_array_length(critical_issues) <= 100),
    warnings          jsonb DEFAULT '[]' CHECK (jsonb_array_length(warnings) <= 100),
    recommendations   jsonb DEFAULT '[]' CHECK (jsonb_array_length(recommendations) <= 50),
    detailed_analysis text,
    execution_time    integer CHECK (execution_time >= 0),
    metadata          jsonb DEFAULT '{}' CHECK (pg_column_size(metadata) <= 1048576),
    validation_mode   text CHECK (validation_mode IN ('prospective', 'retrospective')),
    justification     text,
    conditions        jsonb,
    invocation_id     text UNIQUE,
    phase             text,
    source            text DEFAULT 'manual',
    created_at        timestamp with time zone DEFAULT now(),
    updated_at        timestamp with time zone DEFAULT now(),
    CONSTRAINT check_conditions_required CHECK (verdict <> 'CONDITIONAL_PASS'
        OR (conditions IS NOT NULL AND jsonb_typeof(conditions) = 'array'
            AND jsonb_array_length(conditions) > 0)),
    CONSTRAINT check_justification_required CHECK (verdict <> 'CONDITIONAL_PASS'
        OR length(coalesce(justification, '')) >= 50)
);
CREATE INDEX idx_subagent_results_sd ON sub_agent_execution_results (sd_id);

CREATE TABLE sd_phase_handoffs (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sd_id                 varchar(50) NOT NULL REFERENCES strategic_directives_v2 (id),
    from_phase            varchar(20) NOT NULL CHECK (from_phase IN (
                              'LEAD', 'PLAN', 'EXEC', 'PLAN_PRD', 'PLAN_VERIFICATION',
                              'EXEC_COMPLETE', 'LEAD_APPROVAL', 'LEAD_COMPLETE', 'LEAD_FINAL',
                              'LEAD_FINAL_APPROVAL', 'COMPLETED', 'CANCELLED')),
    to_phase              varchar(20) NOT NULL CHECK (to_phase IN (
                              'LEAD', 'PLAN', 'EXEC', 'PLAN_PRD', 'PLAN_VERIFICATION',
                              'EXEC_COMPLETE', 'LEAD_APPROVAL', 'LEAD_COMPLETE', 'LEAD_FINAL',
                              'LEAD_FINAL_APPROVAL', 'COMPLETED', 'CANCELLED')),
    handoff_type          varchar(50) NOT NULL CHECK (handoff_type IN (
                              'LEAD-TO-PLAN', 'PLAN-TO-EXEC', 'EXEC-TO-PLAN', 'PLAN-TO-LEAD',
                              'LEAD-FINAL-APPROVAL', 'BYPASS-COMPLETION')),
    status                varchar(20) NOT NULL DEFAULT 'pending_acceptance' CHECK (status IN (
                              'pending_acceptance', 'accepted', 'rejected', 'blocked')),
    executive_summary     text NOT NULL,
    deliverables_manifest text NOT NULL,
    key_decisions         text NOT NULL,
    known_issues          text NOT NULL,
    resource_utilization  text NOT NULL,
    action_items          text NOT NULL,
    completeness_report   text,
    metadata              jsonb DEFAULT '{}',
    rejection_reason      text,
    created_at            timestamp without time zone DEFAULT CURRENT_TIMESTAMP,
    accepted_at           timestamp without time zone,
    rejected_at           timestamp without time zone,
    created_by            varchar(50) DEFAULT 'LEO_AGENT',
    validation_details    jsonb DEFAULT '{}'
                              CONSTRAINT validation_details_max_size
                              CHECK (validation_details IS NULL OR length(validation_details::text) <= 102400),
    validation_score      integer CHECK (validation_score BETWEEN 0 AND 100),
    validation_passed     boolean,
    UNIQUE (sd_id, from_phase, to_phase, created_at)
);
CREATE INDEX idx_sd_phase_handoffs_sd_id ON sd_phase_handoffs (sd_id);

-- Their success log of every handoff, and the only LEAD-FINAL-APPROVAL record.
CREATE TABLE leo_handoff_executions (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sd_id            varchar(50) REFERENCES strategic_directives_v2 (id),
    handoff_type     varchar(50) NOT NULL,
    from_agent       varchar(20),
    to_agent         varchar(20),
    status           varchar(20) DEFAULT 'pending',
    validation_score integer,
    created_by       varchar(100),
    created_at       timestamp with time zone DEFAULT now()
);

CREATE TABLE sd_transition_audit (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sd_id           uuid NOT NULL REFERENCES strategic_directives_v2 (uuid_id),
    transition_type varchar(50) NOT NULL,
    session_id      text,
    request_id      text NOT NULL UNIQUE,
    pre_state       jsonb NOT NULL,
    post_state      jsonb,
    status          varchar(20) DEFAULT 'in_progress'
                        CHECK (status IN ('in_progress', 'completed', 'rolled_back', 'failed')),
    error_details   jsonb,
    started_at      timestamp with time zone DEFAULT now(),
    completed_at    timestamp with time zone
);
CREATE INDEX idx_sd_transition_audit_sd_id ON sd_transition_audit (sd_id);

-- Sessions and claims in one table since their claims consolidation; the claimed SD's key is in
-- sd_key (renamed from sd_id), and a claim goes stale after 600 s without a heartbeat.
CREATE TABLE claude_sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id      text NOT NULL UNIQUE,
    sd_key          text,
    track           text CHECK (track IN ('A', 'B', 'C', 'STANDALONE')),
    tty             text,
    pid             integer,
    hostname        text,
    claimed_at      timestamp with time zone,
    heartbeat_at    timestamp with time zone DEFAULT now(),
    status          text DEFAULT 'active' CHECK (status IN ('active', 'idle', 'stale', 'released')),
    metadata        jsonb DEFAULT '{}',
    released_reason text,
    released_at     timestamp with time zone,
    worktree_path   text,
    created_at      timestamp with time zone DEFAULT now(),
    updated_at      timestamp with time zone DEFAULT now()
);
CREATE UNIQUE INDEX idx_claude_sessions_unique_active_claim ON claude_sessions (sd_key)
    WHERE sd_key IS NOT NULL AND status IN ('active', 'idle');

CREATE VIEW v_active_sessions AS
SELECT s.id, s.session_id, s.sd_key AS sd_id, s.track, s.status, s.heartbeat_at, s.claimed_at,
       s.released_at, s.released_reason, s.metadata,
       extract(epoch FROM (now() - s.heartbeat_at))::integer AS heartbeat_age_seconds,
       CASE
           WHEN s.status = 'released' THEN 'released'
           WHEN s.heartbeat_at < now() - interval '600 seconds' THEN 'stale'
           WHEN s.sd_key IS NULL THEN 'idle'
           ELSE 'active'
       END AS computed_status
FROM claude_sessions s;

-- Their trigger writes one row per attempted handoff creation here.
CREATE TABLE handoff_audit_log (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    attempted_by     text NOT NULL,
    sd_id            text,
    handoff_type     text,
    from_phase       text,
    to_phase         text,
    blocked          boolean NOT NULL,
    block_reason     text,
    request_metadata jsonb,
    created_at       timestamp with time zone DEFAULT now()
);

-- Row-level security as on Supabase: on for every table, policies only for Supabase's roles.
DO $rls$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['strategic_directives_v2', 'product_requirements_v2', 'user_stories',
                             'retrospectives', 'leo_sub_agents', 'sub_agent_execution_results',
                             'sd_phase_handoffs', 'leo_handoff_executions', 'sd_transition_audit',
                             'claude_sessions', 'handoff_audit_log'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('GRANT ALL ON TABLE %I TO anon, authenticated, service_role', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR ALL TO service_role USING (true) WITH CHECK (true)',
                       'service_role_all_' || t, t);
    END LOOP;
END
$rls$;
CREATE POLICY "Allow authenticated read sd" ON strategic_directives_v2 FOR SELECT TO authenticated USING (true);
CREATE POLICY "Allow anon read sd" ON strategic_directives_v2 FOR SELECT TO anon USING (true);
CREATE POLICY "Allow authenticated update sd" ON strategic_directives_v2 FOR UPDATE TO authenticated USING (true) WITH CHECK (true);
CREATE POLICY "Allow anon read prd" ON product_requirements_v2 FOR SELECT TO anon USING (true);
CREATE POLICY "Allow authenticated all prd" ON product_requirements_v2 FOR ALL TO authenticated USING (true) WITH CHECK (true);
CREATE POLICY "Allow authenticated all stories" ON user_stories FOR ALL TO authenticated USING (true) WITH CHECK (true);
CREATE POLICY "Allow anon insert sd_phase_handoffs" ON sd_phase_handoffs FOR INSERT TO anon WITH CHECK (true);
CREATE POLICY "Allow anon read sd_phase_handoffs" ON sd_phase_handoffs FOR SELECT TO anon USING (true);
CREATE POLICY "Allow authenticated read sd_phase_handoffs" ON sd_phase_handoffs FOR SELECT TO authenticated USING (true);
CREATE POLICY "Allow authenticated delete sd_phase_handoffs" ON sd_phase_handoffs FOR DELETE TO authenticated USING (true);
CREATE POLICY "public read results" ON sub_agent_execution_results FOR SELECT TO public USING (true);
CREATE POLICY "Allow all for anon" ON claude_sessions FOR ALL TO anon USING (true) WITH CHECK (true);
CREATE POLICY "authenticated_select_claude_sessions" ON claude_sessions FOR SELECT TO authenticated USING (true);
GRANT SELECT ON v_active_sessions TO anon, authenticated, service_role;
