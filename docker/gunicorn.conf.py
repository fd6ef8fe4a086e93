"""gunicorn settings of the control plane's web process, read from the environment.

gthread workers run the WSGI app (controlplane.wsgi): the views, the ORM and DRF are all
synchronous, so an ASGI worker would only add a thread hop per request, and uvicorn's gunicorn
worker leaves Nagle's algorithm on for accepted sockets (uvicorn #3149). gunicorn sets
TCP_NODELAY on its listening socket, which accepted sockets inherit. This file must never hold
or log secrets: it only reads sizes, timeouts and addresses.
"""

from __future__ import annotations

import gc
import os


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    return default if not raw else raw in {"1", "true", "yes", "on"}


bind = [f"{os.environ.get('WEB_HOST', '0.0.0.0')}:{_int('PORT', 8000)}"]  # noqa: S104
worker_class = "gthread"
# Processes give CPU parallelism; threads overlap the waits on PostgreSQL and Redis.
workers = _int("WEB_CONCURRENCY", 2)
threads = _int("WEB_THREADS", 4)
# A worker silent for this long is killed and replaced: a stuck request never takes the
# process down with it for good.
timeout = _int("WEB_TIMEOUT", 30)
# SIGTERM lets in-flight requests finish for this long; keep it below the orchestrator's grace
# period (Kubernetes' default terminationGracePeriodSeconds is 30, compose's stop_grace_period).
graceful_timeout = _int("WEB_GRACEFUL_TIMEOUT", 25)
keepalive = _int("WEB_KEEPALIVE", 5)
# Recycle workers now and then so a slow leak in a dependency never grows without bound, but
# rarely: a worker boots Django in about a second of CPU, and at 2,000 requests (the old value) a
# worker serving a CI burst of a few hundred requests per second restarted every few seconds
# (32 boots in one run of bench/registry_api.py). 100,000 requests is minutes even at full load;
# the jitter (10%) keeps the workers from restarting together. 0 turns recycling off.
max_requests = _int("WEB_MAX_REQUESTS", 100_000)
max_requests_jitter = _int("WEB_MAX_REQUESTS_JITTER", 10_000)
# The heartbeat file lives in memory: a container's /tmp may sit on a slow overlay filesystem,
# and a blocked heartbeat write makes the arbiter kill healthy workers.
# gunicorn creates its files there with mkstemp, so a shared directory is safe.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
# Proxies allowed to set X-Forwarded-Proto; with TLS terminated at an ingress, set this to its
# addresses so Django sees https (CSRF origin checks and secure cookies depend on it).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# The control socket (gunicorn >= 25.1) would be created under $HOME, which is read-only here.
control_socket_disable = True

loglevel = os.environ.get("LOG_LEVEL", "info").lower()
errorlog = "-"
accesslog = "-" if _bool("WEB_ACCESS_LOG", True) else None
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s agent="%(a)s"'


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """Move everything the worker loaded at start (Django, DRF, the apps: about 200,000 objects)
    out of the garbage collector's reach: a full collection would scan them all again and again
    (measured: about 2 ms per request amortised on a page of 50 versions, and a pause of 100 ms or
    more when it hits; bench/registry_api.py). Request garbage is collected as before."""
    gc.freeze()
