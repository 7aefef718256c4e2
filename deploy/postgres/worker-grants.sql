-- The least-privilege role a LEO worker logs in as: `leo_worker`. No superuser, no CREATEDB,
-- CREATEROLE, REPLICATION or BYPASSRLS; no DDL, no DELETE, no TRUNCATE. Documented in
-- docs/reliability.md and applied by tests/faults/test_security.py, which runs a whole
-- SD-LIFECYCLE (all five handoffs, the session claim, EXEC's report) with a worker logged in
-- as this role.
--
-- Run it as the owner of LEO's tables (the role `leo db migrate` runs as), in LEO's database,
-- after `leo db migrate`, and again after every migration that adds a function:
--
--     psql "$LEO_OWNER_DATABASE_URL" -v ON_ERROR_STOP=1 -f deploy/postgres/worker-grants.sql
--
-- Creating the role needs CREATEROLE; if a DBA creates it, the CREATE ROLE block is skipped.
-- The file sets no password: give the role one from your secret store,
--     ALTER ROLE leo_worker PASSWORD '...';
-- and put it in the worker's LEO_DATABASE_URL only. The file is idempotent.
--
-- Why these privileges: the transition and claim functions are SECURITY INVOKER, so they run
-- with the worker's rights. The worker reads the SD and everything a handoff decides on
-- (snapshot), inserts sub-agent results itself, and through the functions updates the SD, its
-- PRD and stories, inserts handoff records, audit rows (and updates them to completed/failed),
-- session claims, EXEC reports and retrospectives. `SELECT ... FOR UPDATE` row locks need
-- UPDATE on the table they lock. Advisory locks need no grant.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'leo_worker') THEN
        CREATE ROLE leo_worker LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
            NOBYPASSRLS;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO leo_worker', current_database());
END $$;

-- Read, not create: PostgreSQL 15+ no longer grants CREATE on public to PUBLIC; say so anyway.
REVOKE CREATE ON SCHEMA public FROM leo_worker;
GRANT USAGE ON SCHEMA public TO leo_worker;

-- Read only: the sub-agent catalogue.
GRANT SELECT ON leo_sub_agents TO leo_worker;

-- Read and insert: records the worker adds and never changes.
GRANT SELECT, INSERT ON sub_agent_execution_results, sd_phase_handoffs, sd_exec_reports,
    retrospectives TO leo_worker;

-- Read, insert and update: the SD and what a transition changes, the audit row (written
-- in_progress, then completed or failed), and session claims (upserted).
GRANT SELECT, UPDATE ON strategic_directives_v2, product_requirements_v2, user_stories
    TO leo_worker;
GRANT SELECT, INSERT, UPDATE ON sd_transition_audit, claude_sessions TO leo_worker;

-- EXECUTE on LEO's functions only: the entry points (fn_atomic_*, fn_record_*, claim_sd,
-- heartbeat_sd_claim, release_sd) and the leo_* helpers they call (PostgreSQL checks EXECUTE
-- on nested calls too). Taken away from PUBLIC, so a role without this file's grants cannot
-- call them at all.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure
        FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND p.prokind = 'f'
          AND p.prorettype <> 'trigger'::regtype
          AND (p.proname LIKE 'fn\_atomic\_%' OR p.proname LIKE 'fn\_record\_%'
               OR p.proname LIKE 'leo\_%'
               OR p.proname IN ('claim_sd', 'heartbeat_sd_claim', 'release_sd'))
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO leo_worker', f);
    END LOOP;
END $$;
