"""Settings, read from the environment (12-factor). Secrets come only from the environment;
nothing here holds a real credential."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
import structlog
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("MODELPLANE_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
# Demo mode: the embedded defaults of `make demo` (SQLite, filesystem broker, local runtime).
DEMO = env_bool("MODELPLANE_DEMO", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if DEBUG or DEMO or env_bool("MODELPLANE_TESTING"):
        # Only for a local first run: a fixed, clearly-insecure key never used in production.
        SECRET_KEY = "insecure-local-only-key-do-not-use-in-production"  # noqa: S105
    else:
        raise ImproperlyConfigured("SECRET_KEY is required unless DEBUG or MODELPLANE_DEMO is on")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "identity",
    "registry",
    "deployments",
    "monitoring",
    "alerts",
    "reviews",
    "frontend",
    "demo",
]

MIDDLEWARE = [
    "core.middleware.RequestContextMiddleware",
    "core.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "controlplane.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "controlplane.wsgi.application"

# PostgreSQL through psycopg 3 in production; SQLite is the embedded default for a first run.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if not DATABASE_URL:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASE_URL = f"sqlite:///{VAR_DIR / 'modelplane.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
DATABASES["default"]["ATOMIC_REQUESTS"] = True  # one transaction per request
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo's web, worker and beat share one SQLite file: WAL lets readers go on while one
    # writes, and IMMEDIATE transactions take the write lock up front, so two writers queue
    # (busy timeout) instead of failing half-way (SQLite has no SELECT ... FOR UPDATE).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20,
        transaction_mode="IMMEDIATE",
        init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not (DEBUG or DEMO))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"

# Largest request body accepted anywhere (bytes); larger bodies get 413 before parsing.
MAX_REQUEST_BODY_BYTES = int(os.environ.get("MAX_REQUEST_BODY_BYTES", 1_048_576))
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "identity.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "core.api.ProblemAutoSchema",
    "EXCEPTION_HANDLER": "core.errors.problem_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Model deployment control plane API",
    "DESCRIPTION": (
        "Register model versions, run staged releases and roll back. Errors are RFC 9457 "
        "problem documents (application/problem+json) that name the field at fault."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Fields named "status" carry different choice sets: name each one.
    "ENUM_NAME_OVERRIDES": {
        "VersionStatusEnum": "registry.models.VersionStatus",
        "TileStatusEnum": "monitoring.tiles.TileStatus",
        "AlertStatusEnum": "alerts.models.AlertStatus",
        "DeliveryStatusEnum": "alerts.models.DeliveryStatus",
        "IncidentStatusEnum": "alerts.models.IncidentStatus",
        "EscalationTargetEnum": "alerts.models.EscalationTarget",
        "AlertmanagerStatusEnum": ["firing", "resolved"],  # Alertmanager's own alert states
        "ReviewStatusEnum": "reviews.models.ReviewStatus",
        "ReviewDecisionEnum": "reviews.models.Decision",
    },
}

# Celery: Redis in production and CI; a filesystem broker for the serverless demo.
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
else:
    from controlplane import broker  # registers the fsatomic:// transport

    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_URL = f"{broker.ALIAS}://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # kombu polls the folder (1 s by default, which alone costs a rollback ~0.5 s on
        # average); a directory listing every 20 ms is cheap.
        "polling_interval": float(os.environ.get("FILESYSTEM_BROKER_POLL_SECONDS", 0.02)),
    }
    CELERY_RESULT_BACKEND = f"file://{VAR_DIR / 'results'}"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    # A lost message or a dead worker only delays a release: the sweep finds it again.
    "deployments.sweep": {
        "task": "deployments.sweep",
        "schedule": float(os.environ.get("SWEEP_INTERVAL_SECONDS", 10)),
    },
    "deployments.collect_garbage": {"task": "deployments.collect_garbage", "schedule": 60.0},
    # Only does work for environments whose metrics source is the local scrape (the demo).
    "monitoring.scrape_local_metrics": {
        "task": "monitoring.scrape_local_metrics",
        "schedule": float(os.environ.get("LOCAL_SCRAPE_INTERVAL_SECONDS", 5)),
    },
    # The control plane's own alert rules, on the numbers the tiles show.
    "alerts.evaluate_rules": {
        "task": "alerts.evaluate_rules",
        "schedule": float(os.environ.get("ALERTS_EVALUATION_INTERVAL_SECONDS", 30)),
    },
    # Unacknowledged alerts move up their escalation policy.
    "alerts.escalate": {
        "task": "alerts.escalate",
        "schedule": float(os.environ.get("ALERTS_ESCALATION_INTERVAL_SECONDS", 30)),
    },
    # Review items past their SLA: marked, and one alert per deployment fired or cleared.
    "reviews.check_sla": {
        "task": "reviews.check_sla",
        "schedule": float(os.environ.get("REVIEWS_SLA_CHECK_SECONDS", 60)),
    },
    # Claims whose lease ran out go back to the queue.
    "reviews.expire_claims": {
        "task": "reviews.expire_claims",
        "schedule": float(os.environ.get("REVIEWS_CLAIM_EXPIRY_SECONDS", 60)),
    },
    # Outcome deliveries whose message was lost are sent again.
    "reviews.requeue_callbacks": {
        "task": "reviews.requeue_callbacks",
        "schedule": float(os.environ.get("REVIEWS_CALLBACK_REQUEUE_SECONDS", 300)),
    },
    # Input summaries of decided items past the retention are deleted.
    "reviews.purge_summaries": {
        "task": "reviews.purge_summaries",
        "schedule": float(os.environ.get("REVIEWS_PURGE_SECONDS", 3600)),
    },
}
# A fingerprint that fires again within this time of resolving reopens its alert.
ALERTS_REOPEN_WINDOW_SECONDS = float(os.environ.get("ALERTS_REOPEN_WINDOW_SECONDS", 3600))
# The control plane's release rules (alerts/rules.py, docs/alert-rules.md): a release that failed
# or was rolled back automatically keeps alerting this long unless a newer release starts; a
# release that waits for a person (approval, a paused decision) alerts after this long.
# A release's rollback that fails (its target never ready, or the switch never served before the
# progress deadline) starts again from the beginning, this many attempts in all; then the release
# fails and alerts (deployments/engine/rollback.py).
RELEASE_ROLLBACK_ATTEMPTS = int(os.environ.get("RELEASE_ROLLBACK_ATTEMPTS", 3))
# How long a rollback's worker watches for the data plane to serve the switch before it hands
# the check to a countdown (seconds; no lock is held while it watches).
RELEASE_ROLLBACK_SWITCH_WAIT_SECONDS = float(
    os.environ.get("RELEASE_ROLLBACK_SWITCH_WAIT_SECONDS", 0.5)
)
ALERTS_RELEASE_FAILED_LOOKBACK_SECONDS = float(
    os.environ.get("ALERTS_RELEASE_FAILED_LOOKBACK_SECONDS", 24 * 3600)
)
ALERTS_RELEASE_WAIT_SECONDS = float(os.environ.get("ALERTS_RELEASE_WAIT_SECONDS", 4 * 3600))
# Notification retries: the wait doubles from this after each failed try, up to the maximum.
ALERTS_DELIVERY_BACKOFF_SECONDS = float(os.environ.get("ALERTS_DELIVERY_BACKOFF_SECONDS", 30))
ALERTS_DELIVERY_BACKOFF_MAX_SECONDS = float(
    os.environ.get("ALERTS_DELIVERY_BACKOFF_MAX_SECONDS", 1800)
)
ALERTS_WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("ALERTS_WEBHOOK_TIMEOUT_SECONDS", 10))
# Alerts of this severity or worse (critical, warning, info) open an incident as they fire; "" =
# never (people open incidents from the alert page).
ALERTS_AUTO_INCIDENT_SEVERITY = os.environ.get("ALERTS_AUTO_INCIDENT_SEVERITY", "")
# An incident's timeline reaches this far before it opened (or its first alert started).
INCIDENT_LOOKBACK_SECONDS = float(os.environ.get("INCIDENT_LOOKBACK_SECONDS", 3600))

# Review submissions and outcome callbacks (reviews/submission.py, reviews/callbacks.py): the
# largest submission body (larger -> 413), and the signed POST of a decided outcome: attempts
# in all, the first wait before a retry (doubling after each failure) and its cap, and the
# timeout of one call (short: a slow receiver must not hold a worker).
REVIEWS_MAX_SUBMISSION_BYTES = int(os.environ.get("REVIEWS_MAX_SUBMISSION_BYTES", 64 * 1024))
REVIEWS_CALLBACK_MAX_ATTEMPTS = int(os.environ.get("REVIEWS_CALLBACK_MAX_ATTEMPTS", 8))
REVIEWS_CALLBACK_BACKOFF_SECONDS = float(os.environ.get("REVIEWS_CALLBACK_BACKOFF_SECONDS", 30))
REVIEWS_CALLBACK_BACKOFF_MAX_SECONDS = float(
    os.environ.get("REVIEWS_CALLBACK_BACKOFF_MAX_SECONDS", 3600)
)
REVIEWS_CALLBACK_TIMEOUT_SECONDS = float(os.environ.get("REVIEWS_CALLBACK_TIMEOUT_SECONDS", 5))
# Review queues (reviews/sla.py, reviews/claims.py, reviews/retention.py): how often beat checks
# SLAs, expires lapsed claims and purges input summaries; how long a decided item keeps its input
# summary (days from its arrival; the decision stays); and how many rows one transaction of
# those sweeps touches.
REVIEWS_SLA_CHECK_SECONDS = float(os.environ.get("REVIEWS_SLA_CHECK_SECONDS", 60))
REVIEWS_CLAIM_EXPIRY_SECONDS = float(os.environ.get("REVIEWS_CLAIM_EXPIRY_SECONDS", 60))
REVIEWS_PURGE_SECONDS = float(os.environ.get("REVIEWS_PURGE_SECONDS", 3600))
REVIEWS_RETENTION_DAYS = float(os.environ.get("REVIEWS_RETENTION_DAYS", 90))
REVIEWS_SLA_BATCH = int(os.environ.get("REVIEWS_SLA_BATCH", 500))
REVIEWS_CLAIM_EXPIRY_BATCH = int(os.environ.get("REVIEWS_CLAIM_EXPIRY_BATCH", 500))
REVIEWS_PURGE_BATCH = int(os.environ.get("REVIEWS_PURGE_BATCH", 500))

# /metrics of the control plane: readable from loopback, by staff and read tokens; or by anyone.
METRICS_ALLOW_ANONYMOUS = env_bool("METRICS_ALLOW_ANONYMOUS", False)
# Collectors of higher layers that /metrics also exports (monitoring/api/exporter.py never imports
# them): dotted paths to prometheus_client Collector classes taking no arguments.
METRICS_EXTRA_COLLECTORS = ["reviews.metrics.ReviewCollector"]
# Where people reach the portal (links in notifications).
PORTAL_URL = os.environ.get("PORTAL_URL", "http://127.0.0.1:8000").rstrip("/")
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
# The analysis port's implementation (deployments/analysis.py): a dotted path to a class. The
# default is monitoring's analysis plus the human-review gate (a canary overridden more often
# than stable fails), which only applies where the release's config has a review policy.
MODELPLANE_ANALYZER = os.environ.get("MODELPLANE_ANALYZER", "reviews.analysis.OverrideRateAnalyzer")
# How often Celery beat sweeps active releases and rollbacks (a lost message only delays).
SWEEP_INTERVAL_SECONDS = float(os.environ.get("SWEEP_INTERVAL_SECONDS", 10))
# How long one reconcile task goes on taking a release's steps that are due at once, before it
# hands the release back to the queue (deployments/tasks.py).
ENGINE_CHAIN_SECONDS = float(os.environ.get("ENGINE_CHAIN_SECONDS", 5))

# Artifact digests are verified for these URI schemes at registration.
ARTIFACT_FETCH_TIMEOUT_SECONDS = float(os.environ.get("ARTIFACT_FETCH_TIMEOUT_SECONDS", 30))
ARTIFACT_VERIFY_REQUIRED = env_bool("ARTIFACT_VERIFY_REQUIRED", False)
# file:// artifacts are only read below these folders (an artifact store mounted here).
ARTIFACT_FILE_ROOTS = env_list("ARTIFACT_FILE_ROOTS", str(VAR_DIR / "artifacts"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "structlog.stdlib.ProcessorFormatter",
            "processor": structlog.processors.JSONRenderer(),
            "foreign_pre_chain": [
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.processors.TimeStamper(fmt="iso"),
            ],
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},  # one line per request would drown the engine's logs
    },
}
