-- Cluster-wide roles of an EHG_Engineer database on Supabase, re-created for the tests.
-- anon / authenticated / service_role are Supabase's API roles (NOLOGIN; PostgREST switches to
-- them). ehg_owner stands for Supabase's `postgres` role: it owns the schema and the data and
-- is not a superuser. Roles are per cluster, so this file is idempotent.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ehg_owner') THEN
        CREATE ROLE ehg_owner LOGIN NOSUPERUSER NOCREATEROLE NOBYPASSRLS;
    END IF;
END
$roles$;
-- As on Supabase, the owner may switch to the API roles.
GRANT anon, authenticated, service_role TO ehg_owner;
