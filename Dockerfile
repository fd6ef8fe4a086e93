# syntax=docker/dockerfile:1
# The control plane image: the Django portal and API (gunicorn), the Celery worker and beat, and
# the one-shot migrate job, chosen by docker/entrypoint.sh's first argument (web, worker, beat,
# migrate, manage ...). Configured by environment only (docs/operations.md); no secret is ever
# baked in. The inference service has its own image (Dockerfile.serving).

# Stage 1: wheels of the project and of every dependency. Only this stage sees the source
# tree and pip's cache; the runtime stage installs from the wheels and nothing else.
FROM python:3.11-slim AS build

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY controlplane/ controlplane/
COPY core/ core/
COPY identity/ identity/
COPY registry/ registry/
COPY deployments/ deployments/
COPY monitoring/ monitoring/
COPY alerts/ alerts/
COPY reviews/ reviews/
COPY frontend/ frontend/
COPY demo/ demo/
COPY serving/ serving/
# `pip wheel .` builds the same (non-editable) distribution that `pip install .` installs.
RUN pip wheel --wheel-dir /wheels .

# Stage 2: the runtime: the installed project, the entrypoint scripts and collected static files.
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=controlplane.settings \
    MODELPLANE_VAR_DIR=/app/var \
    PORT=8000

WORKDIR /app
# The wheels are bind-mounted from the build stage, so they never become a layer of this image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels modelplane

COPY docker/entrypoint.sh docker/gunicorn.conf.py docker/healthcheck.py docker/demo_model_job.py \
    /app/docker/

# Static files are collected (and compressed by WhiteNoise) at build time, so a web container
# starts without writing anything. Settings refuse to load without SECRET_KEY; this value
# exists only for this RUN step and is not in the image's environment.
RUN SECRET_KEY=collectstatic-build-step-only python -m django collectstatic --noinput --verbosity 0

# The artifact store mount point (ARTIFACT_FILE_ROOTS defaults to $MODELPLANE_VAR_DIR/artifacts).
# Owned by the app user so a fresh named volume mounted here is writable by the demo model job.
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin modelplane \
    && mkdir -p /app/var/artifacts \
    && chown 10001:10001 /app/var/artifacts
USER 10001:10001

EXPOSE 8000
# Liveness of the web role. Worker and beat containers override it with
# `healthcheck.py worker` / `healthcheck.py beat` (docker-compose.yml does).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/docker/healthcheck.py", "web"]

ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["web"]
