"""The Celery application. Tasks live in each app's tasks.py and stay thin."""

import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
def preload_kubernetes_client(**_: Any) -> None:
    """Import the Kubernetes API classes in the worker's main process, before it forks its pool:
    the client loads them (and their models) lazily, which cost each pool process about 2 s on
    its first reconcile against a cluster (bench/engine_scale.py); imported here, every pool
    process inherits them."""
    from deployments.runtime.kubernetes import preload_client

    preload_client()


@app.task(name="controlplane.ping")
def ping() -> str:
    """Round trip through the broker: used by readiness checks and the worker test."""
    return "pong"
