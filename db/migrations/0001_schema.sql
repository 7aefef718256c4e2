-- LEO's tables, with the names and status values LEO users know (docs/leo-domain.md section 1).
-- Differences from the original on purpose: one canonical SD id that every foreign key uses,
-- a real depends_on column, a UNIQUE idempotency key for sub-agent results and UNIQUE request ids
-- for transitions and handoff records.

CREATE TABLE strategic_directives_v2 (
    -- Canonical id. LEO's historical ids are the human key ("SD-LEO-INFRA-HARDENING-001"),
    -- newer rows hold a UUID string; both work. Defaults to sd_key when not given.
    id                  text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$'),
    sd_key              text NOT NULL UNIQUE CHECK (sd_key ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$'),
    title               text NOT NULL CHECK (length(btrim(title)) > 0),
    description         text NOT NULL DEFAULT '',
    scope               text NOT NULL DEFAULT '',
    rationale           text NOT NULL DEFAULT '',
    category            text,
    sd_type             text NOT NULL DEFAULT 'feature' CHECK (sd_type IN (
                            'feature', 'bugfix', 'database', 'infrastructure', 'security',
                            'refactor', 'documentation', 'orchestrator', 'performance',
                            'enhancement', 'docs', 'discovery_spike', 'implementation',
                            'ux_debt', 'uat')),
    status              text NOT NULL DEFAULT 'draft' CHECK (status IN (
                            'draft', 'active', 'in_progress', 'planning', 'review',
                            'pending_approval', 'completed', 'deferred', 'cancelled')),
    current_phase       text NOT NULL DEFAULT 'LEAD_APPROVAL' CHECK (current_phase IN (
                            'LEAD', 'LEAD_APPROVAL', 'LEAD_COMPLETE', 'LEAD_FINAL',
                            'LEAD_FINAL_APPROVAL', 'PLAN_PRD', 'PLAN_VERIFICATION', 'EXEC',
                            'EXEC_COMPLETE', 'COMPLETED', 'CANCELLED')),
    priority            text NOT NULL DEFAULT 'medium'
                            CHECK (priority IN ('critical', 'high', 'medium', 'low')),
    intensity_level     text CHECK (intensity_level IN ('cosmetic', 'structural', 'architectural')),
    parent_sd_id        text REFERENCES strategic_directives_v2 (id),
    relationship_type   text NOT NULL DEFAULT 'standalone'
                            CHECK (relationship_type IN ('standalone', 'parent', 'child')),
    success_criteria    jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(success_criteria) = 'array'),
    success_metrics     jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(success_metrics) = 'array'),
    target_application  text,
    progress_percentage integer NOT NULL DEFAULT 0 CHECK (progress_percentage BETWEEN 0 AND 100),
    is_working_on       boolean NOT NULL DEFAULT false,
    active_session_id   text,
    claiming_session_id text,
    transition_version  integer NOT NULL DEFAULT 1 CHECK (transition_version >= 1),
    metadata            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    completion_date     timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION leo_sd_defaults() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.id := coalesce(NEW.id, NEW.sd_key);
    ELSIF NEW.sd_key IS DISTINCT FROM OLD.sd_key OR NEW.id IS DISTINCT FROM OLD.id THEN
        -- Workflow ids, lock keys and idempotency keys are derived from these: they never change.
        RAISE EXCEPTION 'strategic directive keys are immutable (id %, sd_key %)', OLD.id, OLD.sd_key
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE TRIGGER leo_sd_defaults BEFORE INSERT OR UPDATE ON strategic_directives_v2
    FOR EACH ROW EXECUTE FUNCTION leo_sd_defaults();

CREATE TABLE product_requirements_v2 (
    id                      text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 100),
    sd_id                   text NOT NULL UNIQUE REFERENCES strategic_directives_v2 (id),
    title                   text NOT NULL,
    status                  text NOT NULL DEFAULT 'draft' CHECK (status IN (
                                'draft', 'planning', 'in_progress', 'testing', 'verification',
                                'approved', 'completed', 'archived', 'rejected', 'on_hold',
                                'cancelled')),
    phase                   text NOT NULL DEFAULT 'planning',
    executive_summary       text NOT NULL DEFAULT '',
    functional_requirements jsonb NOT NULL DEFAULT '[]'
                                CHECK (jsonb_typeof(functional_requirements) = 'array'),
    test_scenarios          jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(test_scenarios) = 'array'),
    progress                integer NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    metadata                jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_stories (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    story_key             text NOT NULL UNIQUE CHECK (story_key ~ '^[A-Z0-9-]+:US-[0-9]{3,}$'),
    sd_id                 text NOT NULL REFERENCES strategic_directives_v2 (id),
    prd_id                text REFERENCES product_requirements_v2 (id),
    title                 text NOT NULL,
    acceptance_criteria   jsonb NOT NULL DEFAULT '[]'
                              CHECK (jsonb_typeof(acceptance_criteria) = 'array'),
    status                text NOT NULL DEFAULT 'draft' CHECK (status IN (
                              'draft', 'ready', 'in_progress', 'testing', 'completed', 'blocked')),
    validation_status     text NOT NULL DEFAULT 'pending' CHECK (validation_status IN (
                              'pending', 'in_progress', 'validated', 'failed', 'skipped')),
    e2e_test_status       text NOT NULL DEFAULT 'not_created' CHECK (e2e_test_status IN (
                              'not_created', 'created', 'passing', 'failing', 'skipped')),
    e2e_test_path         text,
    implementation_status text NOT NULL DEFAULT 'pending',
    completed_by          text,
    completed_at          timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_stories_sd_id_idx ON user_stories (sd_id);

CREATE TABLE retrospectives (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sd_id         text NOT NULL REFERENCES strategic_directives_v2 (id),
    quality_score integer NOT NULL CHECK (quality_score BETWEEN 0 AND 100),
    what_went_well jsonb NOT NULL DEFAULT '[]',
    what_to_improve jsonb NOT NULL DEFAULT '[]',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX retrospectives_sd_id_idx ON retrospectives (sd_id);

-- The sub-agent catalogue. executor_kind says how an agent runs: 'builtin' (a documented rule
-- over the recorded evidence, executor_ref names it), 'python' ("module:function"),
-- 'command' (argv as a JSON array; snapshot on stdin, result JSON on stdout), or NULL (none
-- configured: a required agent without an executor blocks the handoff and says so).
CREATE TABLE leo_sub_agents (
    code            text PRIMARY KEY CHECK (code ~ '^[A-Z][A-Z0-9_]{0,49}$'),
    name            text NOT NULL,
    priority        integer NOT NULL DEFAULT 50 CHECK (priority BETWEEN 0 AND 100),
    depends_on      text[] NOT NULL DEFAULT '{}',
    timeout_seconds numeric NOT NULL DEFAULT 60 CHECK (timeout_seconds > 0 AND timeout_seconds <= 3600),
    executor_kind   text CHECK (executor_kind IN ('builtin', 'python', 'command')),
    executor_ref    jsonb,
    active          boolean NOT NULL DEFAULT true,
    metadata        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    CHECK ((executor_kind IS NULL) = (executor_ref IS NULL)),
    CHECK (NOT (code = ANY (depends_on)))
);

CREATE TABLE sub_agent_execution_results (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- sha256 over (canonical SD id, phase, agent code, handoff attempt); a retried activity,
    -- a crashed worker or a replay finds the row instead of writing a second one.
    idempotency_key   text NOT NULL UNIQUE,
    sd_id             text NOT NULL REFERENCES strategic_directives_v2 (id),
    sub_agent_code    text NOT NULL,
    sub_agent_name    text NOT NULL,
    phase             text NOT NULL CHECK (phase IN (
                          'LEAD_PRE_APPROVAL', 'PLAN_PRD', 'EXEC_IMPL', 'PLAN_VERIFY', 'LEAD_FINAL')),
    verdict           text NOT NULL CHECK (verdict IN (
                          'PASS', 'FAIL', 'BLOCKED', 'CONDITIONAL_PASS', 'WARNING',
                          'MANUAL_REQUIRED', 'PENDING', 'ERROR')),
    confidence        integer NOT NULL CHECK (confidence BETWEEN 0 AND 100),
    critical_issues   jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_array_length(critical_issues) <= 100),
    warnings          jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_array_length(warnings) <= 100),
    recommendations   jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_array_length(recommendations) <= 50),
    detailed_analysis text NOT NULL DEFAULT '',
    execution_time    numeric NOT NULL DEFAULT 0 CHECK (execution_time >= 0),
    justification     text,
    conditions        jsonb,
    metadata          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (verdict <> 'CONDITIONAL_PASS'
           OR (jsonb_typeof(conditions) = 'array' AND jsonb_array_length(conditions) > 0
               AND length(coalesce(justification, '')) >= 50))
);
CREATE INDEX sub_agent_execution_results_sd_idx ON sub_agent_execution_results (sd_id, sub_agent_code, created_at DESC);

CREATE TABLE sd_phase_handoffs (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sd_id              text NOT NULL REFERENCES strategic_directives_v2 (id),
    handoff_type       text NOT NULL CHECK (handoff_type IN (
                           'LEAD-TO-PLAN', 'PLAN-TO-EXEC', 'EXEC-TO-PLAN', 'PLAN-TO-LEAD',
                           'LEAD-FINAL-APPROVAL', 'BYPASS-COMPLETION')),
    from_phase         text NOT NULL CHECK (from_phase IN (
                           'LEAD', 'PLAN', 'EXEC', 'PLAN_PRD', 'PLAN_VERIFICATION', 'EXEC_COMPLETE',
                           'LEAD_APPROVAL', 'LEAD_COMPLETE', 'LEAD_FINAL', 'LEAD_FINAL_APPROVAL',
                           'COMPLETED', 'CANCELLED')),
    to_phase           text NOT NULL CHECK (to_phase IN (
                           'LEAD', 'PLAN', 'EXEC', 'PLAN_PRD', 'PLAN_VERIFICATION', 'EXEC_COMPLETE',
                           'LEAD_APPROVAL', 'LEAD_COMPLETE', 'LEAD_FINAL', 'LEAD_FINAL_APPROVAL',
                           'COMPLETED', 'CANCELLED')),
    status             text NOT NULL DEFAULT 'pending_acceptance' CHECK (status IN (
                           'pending_acceptance', 'accepted', 'rejected', 'blocked')),
    -- Unrounded weighted gate score; the threshold is compared on this value.
    validation_score   numeric CHECK (validation_score BETWEEN 0 AND 100),
    validation_passed  boolean,
    validation_details jsonb NOT NULL DEFAULT '{}'
                           CHECK (pg_column_size(validation_details) <= 102400),
    metadata           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    request_id         text NOT NULL UNIQUE,
    session_id         text,
    rejection_reason   text,
    accepted_at        timestamptz,
    rejected_at        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sd_phase_handoffs_sd_idx ON sd_phase_handoffs (sd_id, handoff_type, created_at DESC);

CREATE TABLE sd_transition_audit (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sd_id           text NOT NULL REFERENCES strategic_directives_v2 (id),
    transition_type varchar(50) NOT NULL CHECK (transition_type IN (
                        'LEAD_TO_PLAN', 'PLAN_TO_EXEC', 'EXEC_TO_PLAN', 'PLAN_TO_LEAD',
                        'LEAD_FINAL_APPROVAL')),
    session_id      text,
    request_id      text NOT NULL UNIQUE,
    pre_state       jsonb NOT NULL,
    post_state      jsonb,
    status          varchar(20) NOT NULL DEFAULT 'in_progress'
                        CHECK (status IN ('in_progress', 'completed', 'rolled_back', 'failed')),
    error_details   jsonb,
    -- The jsonb the function returned; an idempotent repeat returns it again.
    result          jsonb,
    handoff_id      uuid REFERENCES sd_phase_handoffs (id),
    started_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    CHECK (status <> 'failed' OR error_details ?& ARRAY[
        'error_code', 'error_message', 'failed_step', 'pre_state', 'partial_state', 'recovery_action'])
);
CREATE INDEX sd_transition_audit_sd_idx ON sd_transition_audit (sd_id, started_at);
CREATE INDEX sd_transition_audit_status_idx ON sd_transition_audit (status);

-- Session claims (leo-domain.md 1.8). A claim is live while its heartbeat is younger than
-- 300 s; after that it is stale and another session may take the SD over.
CREATE TABLE claude_sessions (
    session_id   text PRIMARY KEY CHECK (length(session_id) BETWEEN 1 AND 200),
    sd_id        text REFERENCES strategic_directives_v2 (id),
    track        text CHECK (track IN ('A', 'B', 'C', 'STANDALONE')),
    status       text NOT NULL DEFAULT 'idle' CHECK (status IN ('active', 'idle', 'stale', 'released')),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    claimed_at   timestamptz,
    released_at  timestamptz,
    release_reason text CHECK (release_reason IN (
                     'completed', 'timeout', 'manual', 'conflict', 'session_ended', 'takeover')),
    metadata     jsonb NOT NULL DEFAULT '{}'
);
-- At most one live claim per SD; a stale one is released before another session takes over.
CREATE UNIQUE INDEX claude_sessions_one_active_claim ON claude_sessions (sd_id)
    WHERE sd_id IS NOT NULL AND status = 'active';

CREATE VIEW v_active_sessions AS
SELECT s.*,
       extract(epoch FROM (now() - s.heartbeat_at))::integer AS heartbeat_age_seconds,
       CASE
           WHEN s.status = 'released' THEN 'released'
           WHEN s.heartbeat_at < now() - interval '300 seconds' THEN 'stale'
           WHEN s.sd_id IS NULL THEN 'idle'
           ELSE 'active'
       END AS computed_status
FROM claude_sessions s;
