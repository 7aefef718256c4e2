-- Adopt track, 0003: LEAD's approve / reject decisions (as native migration 0015), in a side
-- table of schema leo keyed by the SD's canonical id (a soft reference).
CREATE TABLE leo.sd_lead_decisions (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sd_id              text NOT NULL,
    decision           text NOT NULL CHECK (decision IN ('approved', 'rejected')),
    approver           text NOT NULL CHECK (length(btrim(approver)) BETWEEN 1 AND 200),
    reason             text NOT NULL DEFAULT '' CHECK (length(reason) <= 5000),
    session_id         text,
    request_id         text NOT NULL UNIQUE CHECK (length(request_id) BETWEEN 1 AND 300),
    transition_version integer NOT NULL,
    db_role            text NOT NULL DEFAULT session_user,
    decided_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (decision = 'approved' OR length(btrim(reason)) > 0)
);
CREATE INDEX sd_lead_decisions_sd_idx ON leo.sd_lead_decisions (sd_id, decided_at);
