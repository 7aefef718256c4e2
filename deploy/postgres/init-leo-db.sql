-- LEO's own role and database, next to Temporal's `temporal` and `temporal_visibility`.
--
-- The postgres image runs this file with psql, once, when it initialises an empty data
-- volume (/docker-entrypoint-initdb.d). It does not run again on later starts, so changing
-- LEO_DB_PASSWORD afterwards needs an ALTER ROLE by hand. Tables and functions are created
-- by the `leo-migrate` job (`leo db migrate`), not here.
--
-- The password comes from the postgresql service's environment (LEO_DB_PASSWORD, set in
-- docker-compose.yml); if it is missing, `:'leo_password'` stays unsubstituted and psql stops
-- with a syntax error instead of creating a role without a password.
\getenv leo_password LEO_DB_PASSWORD

CREATE ROLE leo LOGIN PASSWORD :'leo_password';
CREATE DATABASE leo OWNER leo;
