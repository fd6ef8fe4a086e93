"""Test settings: the real services when they are reachable, and a hard failure under CI=true
when they are not (never a silent fallback to SQLite there)."""

from __future__ import annotations

import os
import socket

os.environ.setdefault("MODELPLANE_TESTING", "1")

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from controlplane.settings import *  # noqa: F403
from controlplane.settings import env_bool

CI = env_bool("CI")
# One id per test run (xdist workers inherit it), for database and queue names.
_run = os.environ.setdefault("MODELPLANE_TEST_RUN", str(os.getpid()))
TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/modelplane"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _reachable(url: str, default_port: int) -> bool:
    parsed = dj_database_url.urlparse.urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), 1
        ):
            return True
    except OSError:
        return False


if _reachable(TEST_DATABASE_URL, 5432):
    DATABASES = {"default": dj_database_url.parse(TEST_DATABASE_URL)}
    DATABASES["default"]["ATOMIC_REQUESTS"] = True
    # A name per test run, so concurrent runs on one server never fight over one database
    # (xdist workers inherit the variable and pytest-django adds their _gwN suffix).
    DATABASES["default"]["TEST"] = {"NAME": f"test_modelplane_{_run}"}
    if os.environ.get("MODELPLANE_TEST_DB_NAME"):
        # A worker process started by a test: talk to that test's database directly.
        DATABASES["default"]["NAME"] = os.environ["MODELPLANE_TEST_DB_NAME"]
elif CI:
    raise ImproperlyConfigured(f"CI=true but PostgreSQL is not reachable at {TEST_DATABASE_URL}")
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": ":memory:",
            "ATOMIC_REQUESTS": True,
        }
    }

REDIS_AVAILABLE = _reachable(TEST_REDIS_URL, 6379)
if REDIS_AVAILABLE:
    REDIS_URL = TEST_REDIS_URL
    CELERY_BROKER_URL = TEST_REDIS_URL
    CELERY_RESULT_BACKEND = TEST_REDIS_URL
elif CI:
    raise ImproperlyConfigured(f"CI=true but Redis is not reachable at {TEST_REDIS_URL}")

# One queue per test process, so concurrent runs (and xdist workers) never take each
# other's tasks from the shared Redis.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("MODELPLANE_CELERY_QUEUE") or (
    f"test-{_run}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast tests only
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
