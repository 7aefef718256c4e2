-- Adopt track, 0002: the database role on LEO's own report and change rows (as native migration
-- 0011 does), and how LEO runs the sub-agent codes it shares with their catalogue: the
-- built-in rules of native migration 0002, mapped onto their codes (rows for codes their
-- catalogue lacks are ignored by the catalogue view).
ALTER TABLE leo.sd_changes ADD COLUMN db_role text DEFAULT session_user;
ALTER TABLE leo.sd_exec_reports ADD COLUMN db_role text DEFAULT session_user;

INSERT INTO leo.sub_agent_executors (code, depends_on, timeout_seconds, executor_kind, executor_ref) VALUES
    ('SECURITY',   '{}',        30, 'builtin', '"SECURITY"'),
    ('TESTING',    '{STORIES}', 30, 'builtin', '"TESTING"'),
    ('DATABASE',   '{}',        30, 'builtin', '"DATABASE"'),
    ('VALIDATION', '{}',        30, 'builtin', '"VALIDATION"'),
    ('GITHUB',     '{}',        30, 'builtin', '"GITHUB"'),
    ('STORIES',    '{}',        30, 'builtin', '"STORIES"'),
    ('RISK',       '{}',        30, 'builtin', '"RISK"'),
    ('RETRO',      '{}',        30, 'builtin', '"RETRO"'),
    ('DOCMON',     '{}',        30, 'builtin', '"DOCMON"')
ON CONFLICT (code) DO NOTHING;
