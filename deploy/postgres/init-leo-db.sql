-- LEO's roles and database, and the Temporal server's own login, next to Temporal's `temporal`
-- and `temporal_visibility` databases.
--
-- The postgres image runs this file with psql, once, as the superuser, when it initialises an
-- empty data volume (/docker-entrypoint-initdb.d). It does not run again on later starts, so
-- changing a password afterwards needs an ALTER ROLE by hand. Tables, functions and grants
-- are created by the `leo-migrate` job (`leo db migrate`, db/privileges.sql), not here.
--
--   temporal          the Temporal server's and its schema job's login: CREATEDB (it creates and
--                     owns `temporal` and `temporal_visibility`), no superuser, no right in `leo`.
--   leo               owns LEO's database, tables and functions; only `leo db migrate` uses it.
--   leo_worker        NOLOGIN group: reads LEO's tables, writes none directly; EXECUTE on the
--                     transitions, the commit step and the recorders. Only it moves an SD.
--   leo_caller        NOLOGIN group for other clients (Supabase rpc(), scripts): the same reads,
--                     EXECUTE on the claims, fn_update_sd and fn_bypass_completion only.
--   (The grants themselves are db/privileges.sql's, applied by `leo db migrate`.)
--   leo_worker_login  the login the worker containers use, a member of leo_worker only.
--
-- The passwords come from the postgresql service's environment (TEMPORAL_DB_PASSWORD,
-- LEO_DB_PASSWORD, LEO_WORKER_DB_PASSWORD, set in docker-compose.yml, which refuses to start
-- without them); if one is missing, its `:'...'` stays unsubstituted and psql stops with a
-- syntax error instead of creating a role without one.
\getenv temporal_password TEMPORAL_DB_PASSWORD
\getenv leo_password LEO_DB_PASSWORD
\getenv worker_password LEO_WORKER_DB_PASSWORD

CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';

CREATE ROLE leo LOGIN PASSWORD :'leo_password';
CREATE DATABASE leo OWNER leo;
CREATE ROLE leo_worker NOLOGIN;
CREATE ROLE leo_caller NOLOGIN;
-- Only LEO's roles may connect to LEO's database (not `temporal`).
REVOKE ALL ON DATABASE leo FROM PUBLIC;
GRANT CONNECT ON DATABASE leo TO leo_worker, leo_caller;
CREATE ROLE leo_worker_login LOGIN PASSWORD :'worker_password' IN ROLE leo_worker;

\connect leo
-- PostgreSQL 14 and older grant CREATE on schema public to PUBLIC; 15+ do not. Say it anyway.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
