-- The database role the web, worker and beat processes log in as (psql variables: app_role,
-- app_password, owner_role, db_name). It owns no table, so it cannot TRUNCATE, ALTER or DROP
-- them: the audit log's trigger refuses UPDATE and DELETE from everyone, and TRUNCATE, which
-- row triggers do not see, is a privilege of the owner alone. Migrations run as owner_role.
-- Never commit a real password: pass it with `psql -v app_password=...` from a secret store.
\set ON_ERROR_STOP on

CREATE ROLE :"app_role" LOGIN PASSWORD :'app_password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
GRANT CONNECT, TEMPORARY ON DATABASE :"db_name" TO :"app_role";
GRANT USAGE ON SCHEMA public TO :"app_role";

-- Tables and sequences that later migrations create (as owner_role) get these grants.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app_role";

-- Tables that exist already, when the role is added to an installed database.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_role";
