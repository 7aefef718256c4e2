-- Issue 17 item 4: reuse that cannot return a stale verdict.
--
-- reuse_window_seconds is now the width of the plan's time bucket: a result is reused under
-- the key (canonical SD id, phase, agent code, time bucket, input hash), so only within the
-- same bucket of this width, and never when the input changed. LEO shipped one hour. 0 still
-- means never reuse; rows that have 0 keep it.
ALTER TABLE leo_sub_agents ALTER COLUMN reuse_window_seconds SET DEFAULT 3600;
-- reuse_fingerprint: for an agent whose verdict depends on the world outside the snapshot (a
-- checkout, a test run, an environment value), the argv of a command whose stdout fingerprints
-- that world (for example ["git", "-C", "/repo", "rev-parse", "HEAD"]); its output joins the
-- reuse key. A command or python agent without one is never reused: it always runs.
ALTER TABLE leo_sub_agents
    ADD COLUMN reuse_fingerprint text[]
        CHECK (reuse_fingerprint IS NULL OR cardinality(reuse_fingerprint) BETWEEN 1 AND 64);
