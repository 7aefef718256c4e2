-- The environment variables a command agent gets besides PATH, HOME, LANG, TZ and its private
-- TMPDIR: names whose values come from the worker's environment (docs/sub-agents.md).
-- The worker's own settings and credentials can never be declared: LEO_*, TEMPORAL_*, libpq's
-- PG*, DATABASE_URL, and TMPDIR (leo/sub_agents/environment.py refuses the same at run time).
ALTER TABLE leo_sub_agents
    ADD COLUMN env_passthrough text[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT leo_sub_agents_env_passthrough_names CHECK (
        cardinality(env_passthrough) = 0
        OR (array_position(env_passthrough, NULL) IS NULL
            AND array_to_string(env_passthrough, '') ~ '^[A-Za-z0-9_]+$'
            AND array_to_string(env_passthrough, ' ')
                ~ '^[A-Za-z_][A-Za-z0-9_]*( [A-Za-z_][A-Za-z0-9_]*)*$')),
    ADD CONSTRAINT leo_sub_agents_env_passthrough_no_secrets CHECK (
        (' ' || upper(array_to_string(env_passthrough, ' ')) || ' ')
            !~ ' (LEO_|TEMPORAL_|PG|DATABASE_URL |TMPDIR )');
