#!/bin/sh
# Runs once, when the compose PostgreSQL initialises an empty data directory (the postgres
# image runs /docker-entrypoint-initdb.d/*.sh): creates the application role of app-role.sql.
# The password comes from the environment (.env); this script must never echo it.
set -eu
: "${APP_DB_USER:?APP_DB_USER is required}"
: "${APP_DB_PASSWORD:?APP_DB_PASSWORD is required}"
psql --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v app_role="$APP_DB_USER" \
    -v app_password="$APP_DB_PASSWORD" \
    -v owner_role="$POSTGRES_USER" \
    -v db_name="$POSTGRES_DB" \
    -f /etc/modelplane/app-role.sql
