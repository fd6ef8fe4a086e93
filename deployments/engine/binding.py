"""How the engine reaches a deployment in its runtime: the runtime client, the deployment's name
there, the spec of a version, and whether a version may receive traffic. Never changes the
runtime or the database itself (the step actions and the rollback do)."""

from __future__ import annotations

from django.conf import settings

from registry.models import ModelVersion

from ..models import Deployment, DeploymentConfig
from ..review_policy import serving_selection
from ..runtime.base import (
    Autoscaling,
    DeploymentRef,
    Readiness,
    Resources,
    Runtime,
    SecretRef,
    VersionSpec,
    VersionStatus,
)
from ..runtime.factory import runtime_for


def deployment_ref(deployment: Deployment) -> DeploymentRef:
    return DeploymentRef(
        name=deployment.name,
        model=deployment.model.name,
        environment=deployment.environment.name,
        namespace=deployment.environment.namespace,
    )


def runtime_of(deployment: Deployment) -> Runtime:
    env = deployment.environment
    return runtime_for(env.runtime_kind, env.runtime_config)


def version_spec(
    deployment: Deployment, config: DeploymentConfig, version: ModelVersion, release_id: int | None
) -> VersionSpec:
    autoscaling = None
    if config.min_replicas and config.max_replicas:
        autoscaling = Autoscaling(
            min_replicas=config.min_replicas, max_replicas=config.max_replicas
        )
    return VersionSpec(
        version=version.number,
        artifact_uri=version.artifact_uri,
        artifact_digest=version.artifact_digest,
        image=version.image,
        replicas=config.replicas,
        resources=Resources(
            cpu_request=config.cpu_request,
            cpu_limit=config.cpu_limit,
            memory_request=config.memory_request,
            memory_limit=config.memory_limit,
            gpu=config.gpu,
        ),
        autoscaling=autoscaling,
        env={str(k): str(v) for k, v in (config.env or {}).items()},
        secret_refs=tuple(
            SecretRef(r["env_name"], r["secret_name"], r["secret_key"])
            for r in (config.secret_refs or [])
        ),
        release_id=release_id,
        serving_env=review_env(deployment, config),
    )


def review_env(deployment: Deployment, config: DeploymentConfig) -> dict[str, str]:
    """What the serving process needs to apply the deployment's review policy itself and submit
    the items it selects (serving/review.py); nothing when the policy reviews nothing. The token
    it submits with is a secret reference of the config (MODELPLANE_REVIEW_TOKEN), never here."""
    selection = serving_selection(config.review_policy)
    if not selection:
        return {}
    return {
        "MODELPLANE_REVIEW_POLICY": selection,
        "MODELPLANE_REVIEW_DEPLOYMENT": str(deployment.pk),
        "MODELPLANE_REVIEW_URL": f"{settings.PORTAL_URL}/api/v1/reviews/",
    }


def can_serve(status: VersionStatus) -> bool:
    """Ready AND running: a version scaled to zero reports ready with nothing available, and
    traffic must never go to it."""
    return status.readiness is Readiness.READY and status.available_replicas > 0
