"""The one set of test data builders: factory_boy factories for users, teams, models and
versions, and builders that make environments, deployments and releases through the real
services (the runtime pointed at a closed loopback port: nothing contacts it unless a reconcile
runs). Every test package builds its data from here."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from alerts import incidents as alert_incidents
from alerts import services as alert_services
from alerts.models import (
    Alert,
    AlertEvent,
    AlertEventKind,
    AlertSource,
    EscalationPolicy,
    EscalationStep,
    LayerMember,
    NotificationChannel,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
)
from deployments import engine, services
from deployments.models import (
    Deployment,
    Environment,
    Release,
    ReleaseState,
    Rollback,
    RollbackState,
)
from identity.audit import Actor
from identity.models import ApiToken, Membership, Team, forget_roles
from identity.services import token_create
from registry.models import ModelVersion, RegisteredModel

INPUT_SCHEMA = {
    "type": "object",
    "properties": {"age": {"type": "number", "minimum": 0}, "plan": {"enum": ["basic", "pro"]}},
    "required": ["age", "plan"],
    "additionalProperties": False,
}


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password("pw-for-tests-only")


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"team-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    team = factory.SubFactory(TeamFactory)
    user = factory.SubFactory(UserFactory)
    role = "viewer"


class RegisteredModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RegisteredModel

    name = factory.Sequence(lambda n: f"model-{n}")
    team = factory.SubFactory(TeamFactory)
    risk_tier = "medium"


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion
        skip_postgeneration_save = True

    model = factory.SubFactory(RegisteredModelFactory)
    number = factory.Sequence(lambda n: n + 1)
    artifact_uri = factory.LazyAttribute(lambda o: f"s3://artifacts/{o.model.name}/{o.number}.mpkg")
    artifact_digest = factory.LazyAttribute(
        lambda o: "sha256:" + hashlib.sha256(f"{o.model.name}-{o.number}".encode()).hexdigest()
    )
    input_schema = factory.LazyFunction(lambda: dict(INPUT_SCHEMA))

    @factory.post_generation
    def bump_counter(self, create, extracted, **kwargs):  # type: ignore[no-untyped-def]
        if create and self.model.last_version_number < self.number:
            RegisteredModel.objects.filter(pk=self.model_id).update(last_version_number=self.number)
            self.model.last_version_number = self.number


def make_token(
    team: Team,
    scopes: list[str],
    *,
    name: str | None = None,
    expires_in: timedelta = timedelta(days=30),
) -> tuple[ApiToken, str]:
    """A real token through the service (so hashing is the real one); returns (token, secret)."""
    issued = token_create(
        actor=Actor.system("tests"),
        team=team,
        name=name or f"ci-{ApiToken.objects.count() + 1}",
        scopes=scopes,
        expires_at=timezone.now() + expires_in,
    )
    return issued.token, issued.secret


# Deployments ---------------------------------------------------------------------------------

SYSTEM = Actor.system("tests")
K8S = {"api_url": "http://127.0.0.1:9"}
VCPU_HOUR = 0.04
GIB_HOUR = 0.005
CANARY = {"steps": [10, 50, 100], "analysis_interval_seconds": 75, "min_requests": 10}


def environment_of(
    name: str,
    *,
    metrics_kind: str = "none",
    metrics_url: str = "",
    scrape_interval_seconds: float = 1.0,
    **options: Any,
) -> Environment:
    """An environment on the closed Kubernetes port, priced, with the given metrics source (the
    test Prometheus scrapes every second)."""
    return services.environment_create(
        actor=SYSTEM,
        name=name,
        runtime_kind="kubernetes",
        runtime_config={**K8S, "namespace": "models"},
        metrics_kind=metrics_kind,
        metrics_url=metrics_url,
        metrics_scrape_interval_seconds=scrape_interval_seconds,
        vcpu_hour_price=VCPU_HOUR,
        gib_hour_price=GIB_HOUR,
        **options,
    )


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
        vcpu_hour_price=VCPU_HOUR,
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
        index = next(i for i, s in enumerate(engine.steps_of(release)) if s.action == action)
    fields: dict[str, Any] = {"state": state, "step_index": index}
    if state == ReleaseState.PAUSED:
        fields["paused_from"] = ReleaseState.PROGRESSING
    Release.objects.filter(pk=release.pk).update(**fields)
    release.refresh_from_db()
    return release


def give_duty(user: Any, team: Any, **duties: bool) -> None:
    Membership.objects.filter(user=user, team=team).update(**duties)
    forget_roles(user)


# Alerts --------------------------------------------------------------------------------------
# Builders for the alerts app's tables go here (one set for every test package).


def alert_of(
    team: Team,
    *,
    deployment: Deployment | None = None,
    rule: str = "test_rule",
    severity: str = "critical",
    status: str = "firing",
    assignee: Any = None,
    fingerprint: str | None = None,
    **fields: Any,
) -> Alert:
    """An alert as a rule would have opened it (test set-up only: no routing, no notification)."""
    alert = Alert.objects.create(
        team=team,
        source=fields.pop("source", AlertSource.RULE),
        fingerprint=fingerprint
        or f"{rule}:{deployment.pk if deployment else 0}:{Alert.objects.count()}",
        rule=rule,
        severity=severity,
        status=status,
        title=fields.pop("title", f"{rule} on {deployment.name if deployment else team.slug}"),
        deployment=deployment,
        model=deployment.model if deployment else None,
        assignee=assignee,
        **fields,
    )
    AlertEvent.objects.create(alert=alert, kind=AlertEventKind.FIRED, actor_label="system:tests")
    return alert


def oncall_schedule_of(
    team: Team,
    members: list[Any],
    *,
    name: str = "primary",
    shift_hours: int = 168,
    rotation_start: Any = None,
    time_zone: str = "UTC",
) -> Any:
    """A schedule with one rotation layer of `members` (users), made by the service."""
    return alert_services.schedule_create(
        actor=SYSTEM,
        team=team,
        name=name,
        time_zone=time_zone,
        layers=[
            {
                "name": "weekly",
                "rotation_start": rotation_start or timezone.now() - timedelta(hours=1),
                "shift_hours": shift_hours,
                "members": [m.get_username() for m in members],
            }
        ],
    )


def escalation_policy_of(
    team: Team,
    steps: list[dict[str, Any]],
    *,
    name: str = "default",
    is_default: bool = True,
    repeat: int = 0,
) -> Any:
    """A policy made by the service; steps as the API takes them ({target, schedule: id, ...})."""
    return alert_services.policy_create(
        actor=SYSTEM, team=team, name=name, steps=steps, is_default=is_default, repeat=repeat
    )


def incident_of(team: Team, *, alert: Alert | None = None, **fields: Any) -> Any:
    """An incident opened by the service (from `alert`, or by hand with a title)."""
    if alert is None:
        fields.setdefault("title", "something is wrong")
        fields.setdefault("severity", "critical")
    return alert_incidents.open_incident(actor=SYSTEM, team=team, alert=alert, **fields)


# Rows as stored, without the services' checks: on-call and escalation tests set every field.


def schedule_of(team: Team, *, name: str = "primary", time_zone: str = "UTC") -> Schedule:
    return Schedule.objects.create(team=team, name=name, time_zone=time_zone)


def layer_of(
    schedule: Schedule,
    members: list[Any],
    *,
    rotation_start: Any,
    shift_hours: int = 24,
    name: str | None = None,
    position: int = 0,
    **fields: Any,
) -> ScheduleLayer:
    """A rotation layer whose `members` (users) take turns in the order given."""
    layer = ScheduleLayer.objects.create(
        schedule=schedule,
        name=name or f"layer{position}",
        position=position,
        rotation_start=rotation_start,
        shift_hours=shift_hours,
        **fields,
    )
    for i, user in enumerate(members):
        LayerMember.objects.create(layer=layer, user=user, position=i)
    return layer


def override_of(schedule: Schedule, user: Any, starts_at: Any, ends_at: Any) -> ScheduleOverride:
    return ScheduleOverride.objects.create(
        schedule=schedule, user=user, starts_at=starts_at, ends_at=ends_at
    )


def policy_of(
    team: Team,
    steps: list[tuple[str, Any, int]],
    *,
    repeat: int = 0,
    name: str = "default",
    is_default: bool = True,
) -> EscalationPolicy:
    """Steps as (target, schedule-or-user-or-None, wait_minutes), in order."""
    policy = EscalationPolicy.objects.create(
        team=team, name=name, repeat=repeat, is_default=is_default
    )
    for position, (target, who, wait) in enumerate(steps):
        EscalationStep.objects.create(
            policy=policy,
            position=position,
            target=target,
            schedule=who if isinstance(who, Schedule) else None,
            user=who if who is not None and not isinstance(who, Schedule) else None,
            wait_minutes=wait,
        )
    return policy


def channel_of(team: Team, *, name: str = "ops-slack", url_env: str) -> NotificationChannel:
    return NotificationChannel.objects.create(team=team, name=name, url_env=url_env)


def release_failed(release: Release, reason: str) -> Release:
    """A rolling-out release the engine failed (test set-up only): the transition it records."""
    put_in_state(release, ReleaseState.PROGRESSING)
    engine.transition(release, ReleaseState.FAILED, actor=engine.ENGINE, kind="fail", reason=reason)
    return release


def release_rolled_back(release: Release, reason: str, *, automatic: bool) -> Rollback:
    """A rolling-out release rolled back to the version it replaced, by the engine after a
    failed analysis (`automatic`) or by a person, with the Rollback row and the two transitions
    the engine records (test set-up only: no runtime is touched)."""
    put_in_state(release, ReleaseState.PROGRESSING)
    actor = engine.ENGINE if automatic else Actor.system("tests:someone")
    rollback = Rollback.objects.create(
        deployment=release.deployment,
        release=release,
        from_version=release.version,
        to_version=release.from_version,
        state=RollbackState.DONE,
        actor_label=actor.label,
        reason=reason,
        automatic=automatic,
    )
    engine.transition(
        release, ReleaseState.ROLLING_BACK, actor=actor, kind="rollback", reason=reason
    )
    engine.transition(
        release, ReleaseState.ROLLED_BACK, actor=actor, kind="rollback_done", reason=reason
    )
    return rollback


def release_paused_inconclusive(release: Release, reason: str) -> Release:
    """A canary paused by the engine because its analysis could not decide (test set-up only):
    the pause step with the `inconclusive` outcome, as deployments.engine.loop records it."""
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    release.paused_from = ReleaseState.PROGRESSING
    engine.transition(
        release,
        ReleaseState.PAUSED,
        actor=engine.ENGINE,
        kind="pause",
        outcome="inconclusive",
        reason=f"analysis inconclusive: {reason}",
        evidence={"verdict": "inconclusive", "reasons": [reason]},
    )
    return release


# Reviews (queue) -----------------------------------------------------------------------------
# Builders for the review queue's tests: reviewers, and items as a submission would have stored
# them (test set-up only: no policy check, no history event).

QUEUE_POLICY = {"all": True, "sla_minutes": 240, "claim_minutes": 30}


def reviewer_in(team: Team, username: str, *, role: str = "viewer", reviewer: bool = True) -> Any:
    """A member of `team` with the reviewer duty (or, with reviewer=False, without it)."""
    user = UserFactory(username=username)
    Membership.objects.update_or_create(
        team=team, user=user, defaults={"role": role, "is_reviewer": reviewer}
    )
    forget_roles(user)
    return user


def review_deployment_of(
    team: Team,
    *,
    name: str = "credit-scorer",
    environment: str = "production",
    policy: dict[str, Any] | None = None,
) -> Deployment:
    """A deployment of a new model of `team` whose config holds a review policy (by default:
    every prediction, a 4-hour SLA, 30-minute claims), with version 1 stable."""
    model = RegisteredModelFactory(team=team, name=name, risk_tier="high")
    version = ModelVersionFactory(model=model, number=1)
    env = Environment.objects.filter(name=environment).first() or environment_of(environment)
    return deployment_of(
        model, env, stable=version, review_policy=policy if policy is not None else QUEUE_POLICY
    )


def queued_item_of(deployment: Deployment, **fields: Any) -> Any:
    """A review item of `deployment` as submitted (pending, level 1, due in four hours unless
    told otherwise), with a unique ref and request id."""
    review_item = deployment.review_items.model  # ReviewItem, without importing a higher app
    number = review_item.objects.count() + 1
    now = timezone.now()
    values: dict[str, Any] = {
        "ref": f"rv_queue{number:012d}test",
        "team_id": deployment.model.team_id,
        "deployment": deployment,
        "model_version": deployment.stable_version or ModelVersionFactory(model=deployment.model),
        "config_revision": deployment.config.revision if deployment.config else None,
        "track": "stable",
        "request_id": f"req-{number}",
        "mode": "held",
        "reason": "high_risk",
        "prediction": {"label": "declined", "probabilities": {"approved": 0.4, "declined": 0.6}},
        "confidence": 0.6,
        "input_summary": {"income": 52000, "region": "north"},
        "sla_deadline": now + timedelta(hours=4),
    }
    values.update(fields)
    return review_item.objects.create(**values)


# Reviews (submission) ------------------------------------------------------------------------
# The submission API's body, and items already decided. `decided_item_of` sets the decision's
# fields as reviews.decisions.decide leaves them (test set-up only: no claim, no history, no
# callback), so submission, appeal and callback tests do not depend on the deciding code path.


_submissions = [0]  # bodies made so far in this process: each gets its own ref and request id


def submission_body(deployment: Deployment, **changes: Any) -> dict[str, Any]:
    """A valid POST /api/v1/reviews/ body for `deployment` (its stable version, else 1), with a
    fresh ref and request id; `changes` replace fields."""
    _submissions[0] += 1
    number = _submissions[0]
    version = deployment.stable_version.number if deployment.stable_version else 1
    body: dict[str, Any] = {
        "ref": f"rv_submission{number:010d}",
        "deployment": deployment.pk,
        "model": deployment.model.name,
        "version": version,
        "track": "stable",
        "request_id": f"req-submission-{number}",
        "mode": "held",
        "reason": "low_confidence",
        "prediction": {"label": "declined", "probabilities": {"approved": 0.41, "declined": 0.59}},
        "confidence": 0.59,
        "input_summary": {"income": 52000, "region": "north", "employment": "self-employed"},
        "explanation": {"top_features": [["income", -0.31], ["region", 0.05]]},
    }
    body.update(changes)
    return body


def decided_item_of(
    deployment: Deployment,
    decider: Any,
    *,
    decision: str = "confirm",
    output: dict[str, Any] | None = None,
    **fields: Any,
) -> Any:
    """A level-1 item of `deployment` decided by `decider`: confirmed (the final output is the
    prediction) or overridden with `output`."""
    item = queued_item_of(deployment, **fields)
    item.status = "decided"
    item.decision = decision
    item.final_output = item.prediction if decision == "confirm" else output
    item.decision_reason = "checked the income and the region"
    item.decided_by = decider
    item.decided_at = timezone.now()
    item.first_decided_by = decider
    item.save()
    return item
