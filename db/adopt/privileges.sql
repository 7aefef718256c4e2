-- Adopt mode's grants: on objects of schema leo only. Nothing in public is granted, revoked or
-- altered. PUBLIC (and with it Supabase's anon and authenticated) gets nothing in leo; LEO's
-- roles get what they need when they exist (a DBA creates them: deploy/postgres/worker-grants.sql).
REVOKE ALL ON SCHEMA leo FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA leo FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA leo FROM PUBLIC;

DO $grants$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'leo_worker') THEN
        GRANT USAGE ON SCHEMA leo TO leo_worker;
        GRANT SELECT ON ALL TABLES IN SCHEMA leo TO leo_worker;
        GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA leo TO leo_worker;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'leo_caller') THEN
        GRANT USAGE ON SCHEMA leo TO leo_caller;
        GRANT SELECT ON ALL TABLES IN SCHEMA leo TO leo_caller;
    END IF;
END
$grants$;
