-- Edits of an SD's content outside transitions (`leo sd update`, LeoClient.update_sd): what
-- changed (field by field, before and after), who changed it and when. Written only by
-- fn_update_sd (db/functions/sd_update.sql), in the same transaction as the edit.
CREATE TABLE sd_changes (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sd_id          text NOT NULL REFERENCES strategic_directives_v2 (id),
    actor          text NOT NULL CHECK (length(btrim(actor)) BETWEEN 1 AND 200),
    changed_at     timestamptz NOT NULL DEFAULT now(),
    -- {"sd.title": {"from": ..., "to": ...}, "prd.title": ..., "stories.KEY:US-001.title": ...}
    changes        jsonb NOT NULL CHECK (jsonb_typeof(changes) = 'object' AND changes <> '{}'),
    version_before integer NOT NULL,
    version_after  integer NOT NULL CHECK (version_after > version_before),
    -- Optional idempotency key: a retried call returns the first outcome.
    request_id     text UNIQUE CHECK (length(request_id) BETWEEN 1 AND 300),
    -- The jsonb the function returned; an idempotent repeat returns it again.
    result         jsonb NOT NULL
);
CREATE INDEX sd_changes_sd_id_idx ON sd_changes (sd_id, changed_at);
