-- Adopt track, 0001: what LEO needs and an EHG_Engineer database lacks, in side tables of schema
-- leo keyed to their rows. Their tables get no DDL: the keys are soft references (no foreign
-- keys, which would add triggers to their tables and could block their deletes); LEO's views
-- join on them and ignore rows whose target is gone.

-- The request id (idempotency key) and session of each handoff row LEO wrote.
CREATE TABLE leo.handoff_requests (
    request_id text PRIMARY KEY CHECK (length(request_id) BETWEEN 1 AND 300),
    handoff_id uuid NOT NULL UNIQUE,          -- public.sd_phase_handoffs.id
    sd_id      text NOT NULL,                 -- the SD's canonical id (public.strategic_directives_v2.id)
    session_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX handoff_requests_sd_idx ON leo.handoff_requests (sd_id, created_at);

-- The outcome of each transition LEO attempted: what the function returned (an idempotent
-- repeat returns it again) and, for failures, the full error record.
CREATE TABLE leo.transition_results (
    audit_id        uuid PRIMARY KEY,         -- public.sd_transition_audit.id
    request_id      text NOT NULL UNIQUE,
    sd_id           text NOT NULL,
    transition_type text NOT NULL,
    status          text NOT NULL CHECK (status IN ('completed', 'failed')),
    result          jsonb NOT NULL,
    handoff_id      uuid,
    error_details   jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'failed' OR error_details ?& ARRAY[
        'error_code', 'error_message', 'failed_step', 'pre_state', 'partial_state', 'recovery_action'])
);
CREATE INDEX transition_results_sd_idx ON leo.transition_results (sd_id, created_at);

-- The idempotency and reuse keys of the sub-agent results LEO recorded.
CREATE TABLE leo.sub_agent_result_keys (
    idempotency_key text PRIMARY KEY,
    reuse_key       text,
    result_id       uuid NOT NULL UNIQUE,     -- public.sub_agent_execution_results.id
    sd_id           text NOT NULL,
    phase           text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sub_agent_result_keys_reuse_idx ON leo.sub_agent_result_keys (reuse_key, created_at DESC)
    WHERE reuse_key IS NOT NULL;

-- How LEO runs each of their sub-agent codes (their catalogue has no executor settings).
CREATE TABLE leo.sub_agent_executors (
    code                 text PRIMARY KEY,    -- public.leo_sub_agents.code
    depends_on           text[] NOT NULL DEFAULT '{}',
    timeout_seconds      numeric NOT NULL DEFAULT 60 CHECK (timeout_seconds > 0 AND timeout_seconds <= 3600),
    executor_kind        text CHECK (executor_kind IN ('builtin', 'python', 'command')),
    executor_ref         jsonb,
    env_passthrough      text[] NOT NULL DEFAULT '{}',
    reuse_window_seconds integer NOT NULL DEFAULT 0 CHECK (reuse_window_seconds BETWEEN 0 AND 604800),
    input_parts          text[] CHECK (input_parts IS NULL OR input_parts <@ ARRAY[
                             'sd', 'prd', 'stories', 'handoffs', 'evidence', 'retrospectives']::text[]),
    CHECK ((executor_kind IS NULL) = (executor_ref IS NULL)),
    CHECK (NOT (code = ANY (depends_on)))
);

-- EXEC completion reports (their retrospectives have their own creation rules).
CREATE TABLE leo.sd_exec_reports (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sd_id       text NOT NULL,
    session_id  text,
    request_id  text NOT NULL UNIQUE,
    summary     text NOT NULL CHECK (length(btrim(summary)) > 0),
    evidence    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(evidence) = 'object'),
    reported_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sd_exec_reports_sd_idx ON leo.sd_exec_reports (sd_id, reported_at);

-- The content-edit log of `leo sd update` (edits of existing fields only, in adopt mode).
CREATE TABLE leo.sd_changes (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sd_id          text NOT NULL,
    actor          text NOT NULL CHECK (length(btrim(actor)) BETWEEN 1 AND 200),
    changed_at     timestamptz NOT NULL DEFAULT now(),
    changes        jsonb NOT NULL CHECK (jsonb_typeof(changes) = 'object' AND changes <> '{}'),
    version_before integer NOT NULL,
    version_after  integer NOT NULL CHECK (version_after > version_before),
    request_id     text UNIQUE CHECK (length(request_id) BETWEEN 1 AND 300),
    result         jsonb NOT NULL
);
CREATE INDEX sd_changes_sd_id_idx ON leo.sd_changes (sd_id, changed_at);
