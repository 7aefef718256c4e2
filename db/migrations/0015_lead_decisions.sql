-- Issue 17 item 3 (review F14): LEAD's decision on a delivered SD is durable. SD-LIFECYCLE's
-- `approve` and `reject` record it here (fn_record_lead_decision, idempotent on the update's
-- request id) before they are acknowledged; LEAD-FINAL-APPROVAL copies the latest approval into
-- its handoff record (metadata.lead_approval) and its audit row (result.lead_approval). A
-- rejection by LEAD is a row here, with its approver and reason. Append-only, like the audit.
CREATE TABLE sd_lead_decisions (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sd_id              text NOT NULL REFERENCES strategic_directives_v2 (id),
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
CREATE INDEX sd_lead_decisions_sd_idx ON sd_lead_decisions (sd_id, decided_at);

CREATE TRIGGER sd_lead_decisions_append_only
    BEFORE UPDATE OR DELETE ON sd_lead_decisions
    FOR EACH ROW EXECUTE FUNCTION leo_audit_append_only();
CREATE TRIGGER sd_lead_decisions_no_truncate
    BEFORE TRUNCATE ON sd_lead_decisions
    FOR EACH STATEMENT EXECUTE FUNCTION leo_audit_append_only();
