-- Least privilege, applied by `leo db migrate` on every run (idempotent), in the same
-- transaction as the functions when they change, so that a new function is never executable by
-- PUBLIC, not even between two transactions.
--
-- Two NOLOGIN group roles; deployments grant them to their login roles
-- (deploy/postgres/worker-grants.sql, docker-compose.yml):
--   leo_worker  the worker: reads every LEO table, writes none directly; EXECUTE on the entry
--               points that move an SD and record its evidence: the transitions (fn_atomic_*),
--               the commit step fn_commit_handoff, the rejection recorder, the EXEC report, the
--               sub-agent results, LEAD's decision (fn_record_lead_decision), the claims, and
--               the snapshot step's read (fn_prepare_handoff).
--               Only this role moves an SD through its gates.
--   leo_caller  any other client (CLI, Supabase rpc(), scripts): the same reads, the claims,
--               fn_update_sd (`leo sd update`) and fn_bypass_completion, the one explicit way
--               around the gates, recorded as a BYPASS-COMPLETION with its actor, reason and
--               database role. It cannot transition, commit or record a rejection, a report
--               or LEAD's decision.
-- The entry points are SECURITY DEFINER with a pinned search_path: they run as their owner, so
-- the rules in them are the only way to change LEO's tables. EXECUTE on every LEO function is
-- revoked from PUBLIC, and the owner's default privileges keep new functions from PUBLIC too.
-- The audit trail is append-only for everyone (migration 0004).
--
-- Creating the roles needs CREATEROLE (or a superuser); without it, a DBA creates them first
-- (deploy/postgres/worker-grants.sql) and this file grants to them. Revoking CREATE on schema
-- public from PUBLIC (PostgreSQL 14 still grants it) needs the schema's owner; without that the
-- file says so in a NOTICE and deploy/postgres/init-leo-db.sql or a DBA does it.
DO $$
DECLARE
    v_role     text;
    v_can      boolean;
    v_table    text;
    v_function regprocedure;
    v_name     text;
    -- Both roles: the claims and the SD id lookup.
    v_shared_fns constant text[] := ARRAY['claim_sd', 'heartbeat_sd_claim', 'release_sd',
                                          'leo_resolve_sd_id'];
    -- The worker's alone: whatever moves an SD or records the evidence it is judged on.
    v_worker_fns constant text[] := ARRAY['fn_commit_handoff', 'fn_record_handoff_rejection',
                                          'fn_record_exec_report', 'fn_record_sub_agent_result',
                                          'fn_record_lead_decision', 'fn_prepare_handoff'];
    -- Other clients': content edits and the explicit, recorded bypass.
    v_caller_fns constant text[] := ARRAY['fn_update_sd', 'fn_bypass_completion'];
BEGIN
    SELECT rolsuper OR rolcreaterole INTO v_can FROM pg_roles WHERE rolname = current_user;
    FOREACH v_role IN ARRAY ARRAY['leo_worker', 'leo_caller'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_role) THEN
            IF v_can THEN
                BEGIN
                    EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                                   'NOREPLICATION NOBYPASSRLS', v_role);
                EXCEPTION WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- roles are per cluster: another database's migration made it first
                END;
            ELSE
                RAISE NOTICE 'role % does not exist and % may not create it: create it with '
                             'deploy/postgres/worker-grants.sql, then run leo db migrate again',
                             v_role, current_user;
            END IF;
        END IF;
    END LOOP;

    IF EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = 'public'
               AND (pg_has_role(current_user, n.nspowner, 'USAGE')
                    OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))) THEN
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
    ELSE
        RAISE NOTICE 'cannot revoke CREATE on schema public from PUBLIC (not its owner); '
                     'on PostgreSQL 14 ask its owner to';
    END IF;

    -- Functions the owner creates from now on are not PUBLIC-executable either (PostgreSQL's
    -- default grants EXECUTE to PUBLIC at CREATE): a function added by a later migrate is
    -- closed from its creation, before this file grants it to anyone.
    ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

    -- EXECUTE on LEO's functions: from nobody but the owner by default.
    FOR v_function, v_name IN
        SELECT p.oid::regprocedure, p.proname
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND p.prokind = 'f'
          AND (p.proname LIKE 'fn\_%' OR p.proname LIKE 'leo\_%'
               OR p.proname = ANY (v_shared_fns))
          AND pg_has_role(current_user, p.proowner, 'USAGE')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', v_function);
        FOREACH v_role IN ARRAY ARRAY['leo_worker', 'leo_caller'] LOOP
            CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_role);
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM %I', v_function, v_role);
            IF v_name = ANY (v_shared_fns)
               OR (v_role = 'leo_worker'
                   AND (v_name LIKE 'fn\_atomic\_%' OR v_name = ANY (v_worker_fns)))
               OR (v_role = 'leo_caller' AND v_name = ANY (v_caller_fns)) THEN
                EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', v_function, v_role);
            END IF;
        END LOOP;
    END LOOP;

    -- Tables: read, never write. Anything granted before (the old worker-grants.sql gave
    -- INSERT and UPDATE) is taken back first. The migration bookkeeping is not theirs to read.
    FOREACH v_role IN ARRAY ARRAY['leo_worker', 'leo_caller'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_role);
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), v_role);
        EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', v_role);
        EXECUTE format('REVOKE CREATE ON SCHEMA public FROM %I', v_role);
        FOR v_table IN
            SELECT c.oid::regclass::text
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'p', 'm', 'S')
              AND pg_has_role(current_user, c.relowner, 'USAGE')
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
        LOOP
            EXECUTE format('REVOKE ALL ON %s FROM %I', v_table, v_role);
            IF v_table NOT LIKE 'leo\_schema\_%' THEN
                EXECUTE format('GRANT SELECT ON %s TO %I', v_table, v_role);
            END IF;
        END LOOP;
    END LOOP;
END $$;
