#!/bin/sh
# Entrypoint of the control plane image: one process role per container.
#
#   web             gunicorn (WSGI, gthread workers) on $PORT; migrates first only when
#                   MIGRATE_ON_START=true
#   worker [ARGS]   Celery worker (ARGS go to `celery worker`, e.g. -Q releases -n w1@%h)
#   beat [ARGS]     Celery beat: run exactly one per installation
#   migrate [ARGS]  `django migrate --noinput` (a one-shot job, run with the owner role)
#   manage ARGS     any Django management command (`manage createsuperuser`, `manage check`)
#
# Every role `exec`s its process, so SIGTERM from `docker stop` or the kubelet reaches gunicorn
# or Celery directly and they shut down gracefully. This script must never print the
# environment: DATABASE_URL, REDIS_URL and SECRET_KEY carry secrets.
set -eu

HERE=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-controlplane.settings}"
LOG_LEVEL="${LOG_LEVEL:-INFO}"

usage() {
    echo "usage: entrypoint.sh web | worker [ARGS] | beat [ARGS] | migrate [ARGS] | manage ARGS" >&2
    exit 64
}

is_true() {
    case $(printf '%s' "${1:-}" | tr '[:upper:]' '[:lower:]') in
        1 | true | yes | on) return 0 ;;
        *) return 1 ;;
    esac
}

# Separate containers share nothing but PostgreSQL and Redis: without them the settings would
# fall back to SQLite and a filesystem broker inside each container, and the worker would never
# see the web's tasks. Refuse to start instead (the all-in-one demo may opt out).
require_services() {
    is_true "${MODELPLANE_DEMO:-false}" && return 0
    missing=""
    [ -n "${DATABASE_URL:-}" ] || missing="$missing DATABASE_URL"
    if [ "$1" != migrate ] && [ -z "${REDIS_URL:-}" ]; then
        missing="$missing REDIS_URL"
    fi
    if [ -n "$missing" ]; then
        echo "entrypoint.sh: refusing to start $1: set$missing (docs/operations.md)" >&2
        exit 78
    fi
}

role="${1:-web}"
[ $# -gt 0 ] && shift

case "$role" in
    web)
        require_services web
        if is_true "${MIGRATE_ON_START:-false}"; then
            # Convenient for a single-replica install; with several replicas run the `migrate`
            # job instead, so replicas never race each other through one migration.
            python -m django migrate --noinput
        fi
        exec python -m gunicorn --config "$HERE/gunicorn.conf.py" "$@" controlplane.wsgi:application
        ;;
    worker)
        require_services worker
        if [ -n "${WORKER_CONCURRENCY:-}" ]; then
            set -- --concurrency "$WORKER_CONCURRENCY" "$@"
        fi
        if [ -n "${WORKER_MAX_TASKS_PER_CHILD:-}" ]; then
            set -- --max-tasks-per-child "$WORKER_MAX_TASKS_PER_CHILD" "$@"
        fi
        # Gossip and mingle only add broker chatter: workers coordinate through PostgreSQL row
        # locks and Redis leases, never through each other.
        exec python -m celery -A controlplane worker --loglevel "$LOG_LEVEL" \
            --without-gossip --without-mingle "$@"
        ;;
    beat)
        require_services beat
        # The schedule holds only "last run" times of interval tasks, so a file in a writable
        # temporary directory is enough (the root filesystem may be read-only).
        exec python -m celery -A controlplane beat --loglevel "$LOG_LEVEL" \
            --schedule "${BEAT_SCHEDULE_FILE:-${TMPDIR:-/tmp}/celerybeat-schedule}" "$@"
        ;;
    migrate)
        require_services migrate
        exec python -m django migrate --noinput "$@"
        ;;
    manage)
        [ $# -gt 0 ] || usage
        exec python -m django "$@"
        ;;
    *)
        usage
        ;;
esac
