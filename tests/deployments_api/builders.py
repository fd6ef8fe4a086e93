"""Building deployment data for the API and page tests through the real services, with the
runtime pointed at a closed loopback port (nothing contacts it unless a reconcile runs)."""

from __future__ import annotations

from typing import Any

from deployments import services
from deployments.models import Deployment, Environment, Release, ReleaseState
from identity.audit import Actor
from identity.models import Membership, forget_roles
from registry.models import ModelVersion, RegisteredModel

SYSTEM = Actor.system("tests")
K8S = {"api_url": "http://127.0.0.1:9"}
CANARY = {"steps": [10, 50, 100], "analysis_interval_seconds": 60, "min_requests": 10}


def environments() -> tuple[Environment, Environment]:
    """(staging, production), production gated by staging."""
    staging = services.environment_create(
        actor=SYSTEM,
        name="staging",
        runtime_kind="kubernetes",
        runtime_config={**K8S, "namespace": "models-staging"},
    )
    production = services.environment_create(
        actor=SYSTEM,
        name="production",
        runtime_kind="kubernetes",
        runtime_config={**K8S, "namespace": "models"},
        staging="staging",
        is_production=True,
        vcpu_hour_price=0.04,
    )
    return staging, production


def deployment_of(
    model: RegisteredModel,
    environment: Environment,
    *,
    stable: ModelVersion | None = None,
    previous: ModelVersion | None = None,
    strategy: str = "canary",
    **config: Any,
) -> Deployment:
    """A deployment made by the service; `stable`/`previous` stand for earlier promotions."""
    deployment = services.deployment_create(
        actor=SYSTEM,
        model=model,
        environment=environment,
        strategy=strategy,
        strategy_params=CANARY if strategy == "canary" else {},
        **config,
    )
    if stable is not None:
        Deployment.objects.filter(pk=deployment.pk).update(
            stable_version=stable, previous_stable_version=previous
        )
        deployment.refresh_from_db()
    return deployment


def release_of(deployment: Deployment, version: ModelVersion, author: Any) -> Release:
    return services.release_create(
        actor=Actor.from_principal(author), deployment=deployment, version=version
    )


def put_in_state(release: Release, state: str, *, action: str | None = None) -> Release:
    """Move a release as the engine would have (test set-up only): to `state`, at the first
    plan step with `action` (e.g. "analyze") when given."""
    index = release.step_index
    if action is not None:
        index = next(i for i, s in enumerate(release.plan) if s["action"] == action)
    fields: dict[str, Any] = {"state": state, "step_index": index}
    if state == ReleaseState.PAUSED:
        fields["paused_from"] = ReleaseState.PROGRESSING
    Release.objects.filter(pk=release.pk).update(**fields)
    release.refresh_from_db()
    return release


def give_duty(user: Any, team: Any, **duties: bool) -> None:
    Membership.objects.filter(user=user, team=team).update(**duties)
    forget_roles(user)
