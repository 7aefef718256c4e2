-- The least-privilege roles of a LEO deployment, for databases not set up by
-- deploy/postgres/init-leo-db.sql (which does the same at a compose volume's first start).
--
--   leo_worker        NOLOGIN group for workers: reads LEO's tables, writes none directly;
--                     EXECUTE on the transitions, the commit step, the rejection, EXEC-report and
--                     sub-agent-result recorders and the claims, which run as their owner
--                     (SECURITY DEFINER). Only this role moves an SD through its gates.
--   leo_caller        NOLOGIN group for other clients (the CLI's reads, Supabase rpc()): the
--                     same reads, EXECUTE on the claims, fn_update_sd and fn_bypass_completion
--                     (recorded as a BYPASS-COMPLETION with actor, reason and database role);
--                     no transition, commit, rejection or report.
--   leo_worker_login  a login for workers, a member of leo_worker and nothing else.
--
-- Run it as a role with CREATEROLE (a DBA), in LEO's database, then run `leo db migrate` (again)
-- as the owner of LEO's tables: db/privileges.sql grants to the groups on every migrate.
--
--     psql "$LEO_ADMIN_DATABASE_URL" -v ON_ERROR_STOP=1 -f deploy/postgres/worker-grants.sql
--     leo db migrate
--
-- The file sets no password: give the login one from your secret store,
--     ALTER ROLE leo_worker_login PASSWORD '...';
-- and put it in the worker's LEO_DATABASE_URL only. More logins: GRANT leo_worker TO <login>.
-- The file is idempotent; docs/reliability.md ("Least privilege") lists what each role may do.

DO $$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['leo_worker', 'leo_caller'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_role) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                           'NOREPLICATION NOBYPASSRLS', v_role);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'leo_worker_login') THEN
        CREATE ROLE leo_worker_login LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
            NOBYPASSRLS;
    END IF;
    GRANT leo_worker TO leo_worker_login;
END $$;

-- PostgreSQL 14 and older grant CREATE on schema public to PUBLIC (15+ do not): take it away
-- from everyone, explicitly, since a REVOKE from leo_worker alone would change nothing.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
