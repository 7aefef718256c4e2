-- Issue 13: reuse a sub-agent result when nothing it depends on changed.
-- reuse_window_seconds: how long a recorded result of this agent may stand in for a new run
-- on the same SD, phase and agent input (0 = never reuse, the default).
-- reuse_key: sha256 over (canonical SD id, phase, agent code, hash of the agent's input);
-- set on every row recorded by the commit step, looked up by the snapshot step.
ALTER TABLE leo_sub_agents
    ADD COLUMN reuse_window_seconds integer NOT NULL DEFAULT 0
        CHECK (reuse_window_seconds BETWEEN 0 AND 604800);
ALTER TABLE sub_agent_execution_results ADD COLUMN reuse_key text;
CREATE INDEX sub_agent_execution_results_reuse_idx
    ON sub_agent_execution_results (reuse_key, created_at DESC) WHERE reuse_key IS NOT NULL;
-- input_parts: the parts of the handoff snapshot an agent reads (NULL = all of them). An agent
-- that names them gets only those in its input (and its input hash covers only those), plus
-- the SD's identity (id, key, title, type, status, phase).
ALTER TABLE leo_sub_agents
    ADD COLUMN input_parts text[]
        CHECK (input_parts IS NULL OR input_parts <@ ARRAY[
            'sd', 'prd', 'stories', 'handoffs', 'evidence', 'retrospectives']::text[]);
