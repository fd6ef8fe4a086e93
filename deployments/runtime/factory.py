"""Builds the runtime of an environment from its stored connection settings. The settings hold
paths and names only (a kubeconfig path, a context, a namespace), never credentials."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from kubernetes import client as k8s

from .base import Runtime
from .kubernetes import KubernetesRuntime
from .local import LocalRuntime

_cache: dict[tuple, Runtime] = {}


def runtime_for(kind: str, config: dict[str, Any]) -> Runtime:
    """One runtime object per distinct connection, reused across reconciles in a process."""
    key = (kind, repr(sorted(config.items())))
    runtime = _cache.get(key)
    if runtime is None:
        runtime = _build(kind, config)
        _cache[key] = runtime
    return runtime


def _build(kind: str, config: dict[str, Any]) -> Runtime:
    if kind == "local":
        state_dir = config.get("state_dir") or str(settings.VAR_DIR / "local-runtime")
        return LocalRuntime(state_dir)
    if kind == "kubernetes":
        options = {
            key: config[key]
            for key in (
                "gateway_name",
                "gateway_namespace",
                "gateway_section_name",
                "progress_deadline_seconds",
                "service_port",
                "container_port",
                "entrypoint_url",
                "version_url_template",
                "request_timeout",
                "max_attempts",
            )
            if key in config
        }
        if config.get("api_url"):
            # An API server reached directly (a proxy, or the test suite's fake API server).
            configuration = k8s.Configuration()
            configuration.host = config["api_url"]
            configuration.verify_ssl = bool(config.get("verify_ssl", True))
            return KubernetesRuntime(k8s.ApiClient(configuration), **options)
        return KubernetesRuntime.from_config(
            kubeconfig_path=config.get("kubeconfig"),
            context=config.get("context"),
            in_cluster=bool(config.get("in_cluster", False)),
            **options,
        )
    raise ValueError(f"unknown runtime kind {kind!r}")


def clear_cache() -> None:
    _cache.clear()
