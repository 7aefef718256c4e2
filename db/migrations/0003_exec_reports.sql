-- EXEC's completion reports: what EXEC says it delivered when it reports its work done to the
-- SD lifecycle (test results, commits, a retrospective). One row per report request.
CREATE TABLE sd_exec_reports (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sd_id       text NOT NULL REFERENCES strategic_directives_v2 (id),
    session_id  text,
    request_id  text NOT NULL UNIQUE,
    summary     text NOT NULL CHECK (length(btrim(summary)) > 0),
    evidence    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(evidence) = 'object'),
    reported_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sd_exec_reports_sd_idx ON sd_exec_reports (sd_id, reported_at);
