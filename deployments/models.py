"""Deployment tables: environments, deployments and their versioned configs, releases with their
steps and approvals, and rollbacks. A release row is desired state; the reconcile loop
(deployments/engine/) moves the runtime toward it. Writes live in services.py. Each set of
release states is named once, here; the rules that read them live in policy.py."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from core import clock
from identity.models import TeamScopedQuerySet
from registry.models import ModelVersion, RegisteredModel


class RuntimeKind(models.TextChoices):
    KUBERNETES = "kubernetes", "Kubernetes"
    LOCAL = "local", "Local processes"


class MetricsKind(models.TextChoices):
    PROMETHEUS = "prometheus", "Prometheus"
    LOCAL = "local", "Local scrape"
    NONE = "none", "None"


class Environment(models.Model):
    """Where deployments run: a runtime connection, a metrics source, cost rates, and the
    environment releases must pass through first (staging for production)."""

    name = models.SlugField(max_length=63, unique=True)
    description = models.TextField(blank=True)
    runtime_kind = models.CharField(max_length=20, choices=RuntimeKind.choices)
    # Kubernetes: {"kubeconfig": path, "context": str, "in_cluster": bool, "api_url": str,
    # "namespace": str, "gateway": {"name", "namespace"}}; local: {"state_dir": path}.
    # Never credentials: only paths and names that reference them.
    runtime_config = models.JSONField(default=dict, blank=True)
    metrics_kind = models.CharField(
        max_length=20, choices=MetricsKind.choices, default=MetricsKind.NONE
    )
    metrics_url = models.URLField(blank=True)
    # How often the metrics source scrapes the services: an analysis interval must hold at
    # least 20 samples of two scrape intervals each (checked when a strategy is configured).
    metrics_scrape_interval_seconds = models.FloatField(default=15.0)
    vcpu_hour_price = models.DecimalField(max_digits=10, decimal_places=5, default=0)
    gib_hour_price = models.DecimalField(max_digits=10, decimal_places=5, default=0)
    gpu_hour_price = models.DecimalField(max_digits=10, decimal_places=5, default=0)
    staging = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="gates",
        help_text="Releases here first deploy, smoke-test and rehearse a rollback there.",
    )
    is_production = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def namespace(self) -> str:
        return str(self.runtime_config.get("namespace", "default"))


class Strategy(models.TextChoices):
    CANARY = "canary", "Canary"
    BLUE_GREEN = "blue_green", "Blue-green"
    SHADOW = "shadow", "Shadow"
    ROLLING = "rolling", "Rolling"


DEFAULT_STRATEGY_PARAMS: dict[str, dict[str, Any]] = {
    # 20 minutes per step: with Prometheus scraping every 15 s that is 26 samples of 45 s per
    # side (the rank tests need 20; validation.check_analysis_window asks for 25: see
    # analysis.ANALYSIS_SAMPLES).
    Strategy.CANARY: {
        "steps": [5, 25, 50, 100],
        "analysis_interval_seconds": 1200,
        "min_requests": 100,
    },
    Strategy.BLUE_GREEN: {"keep_warm_seconds": 3600, "analysis_interval_seconds": 0},
    Strategy.SHADOW: {"mirror_percent": 50, "analysis_interval_seconds": 1200, "min_requests": 100},
    Strategy.ROLLING: {},
}


class Deployment(models.Model):
    """One model served in one environment."""

    name = models.SlugField(max_length=50, help_text="DNS label; names the runtime objects")
    team_path = "model__team_id"

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="deployments")
    environment = models.ForeignKey(
        Environment, on_delete=models.PROTECT, related_name="deployments"
    )
    strategy = models.CharField(max_length=20, choices=Strategy.choices, default=Strategy.CANARY)
    strategy_params = models.JSONField(default=dict, blank=True)
    config = models.ForeignKey(
        "DeploymentConfig", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    stable_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The version that was stable before the current one: where a rollback goes.
    previous_stable_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    promoted_at = models.DateTimeField(null=True, blank=True)
    # A short runbook for whoever presses "Roll back": shown on the confirmation and incidents.
    rollback_notes = models.TextField(blank=True, max_length=4000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["environment__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "name"], name="uniq_deployment_name"),
            models.UniqueConstraint(fields=["environment", "model"], name="uniq_deployment_model"),
        ]

    def __str__(self) -> str:
        return f"{self.name} in {self.environment.name}"

    @property
    def effective_strategy_params(self) -> dict[str, Any]:
        return {**DEFAULT_STRATEGY_PARAMS[self.strategy], **(self.strategy_params or {})}


class DeploymentConfig(models.Model):
    """An immutable revision of how a deployment runs. Changing the config adds a revision."""

    team_path = "deployment__model__team_id"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="configs")
    revision = models.PositiveIntegerField()
    replicas = models.PositiveSmallIntegerField(default=2)
    cpu_request = models.CharField(max_length=20, default="250m")
    cpu_limit = models.CharField(max_length=20, default="1")
    memory_request = models.CharField(max_length=20, default="512Mi")
    memory_limit = models.CharField(max_length=20, default="1Gi")
    gpu = models.PositiveSmallIntegerField(default=0)
    min_replicas = models.PositiveSmallIntegerField(null=True, blank=True)
    max_replicas = models.PositiveSmallIntegerField(null=True, blank=True)
    env = models.JSONField(default=dict, blank=True)  # public settings only
    secret_refs = models.JSONField(
        default=list, blank=True
    )  # [{env_name, secret_name, secret_key}]
    slo_latency_p95_ms = models.PositiveIntegerField(default=500)
    slo_error_rate = models.FloatField(default=0.01)
    slo_availability = models.FloatField(default=0.995)
    drift_warn = models.FloatField(default=0.1)
    drift_alert = models.FloatField(default=0.25)
    monthly_budget = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    metrics_queries = models.JSONField(default=dict, blank=True)  # PromQL template overrides
    # Which predictions a person reviews (deployments/review_policy.py); {} reviews nothing.
    review_policy = models.JSONField(default=dict, blank=True)
    created_by_label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["deployment", "-revision"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "revision"], name="uniq_config_revision")
        ]

    def __str__(self) -> str:
        return f"{self.deployment.name} config r{self.revision}"


class ReleaseState(models.TextChoices):
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    APPROVED = "approved", "Approved"
    STAGING = "staging", "Staging"
    REHEARSAL = "rollback_rehearsal", "Rollback rehearsal"
    PROGRESSING = "progressing", "Rolling out"
    PAUSED = "paused", "Paused"
    ROLLING_BACK = "rolling_back", "Rolling back"
    PROMOTED = "promoted", "Promoted"
    ROLLED_BACK = "rolled_back", "Rolled back"
    ABORTED = "aborted", "Aborted"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"


TERMINAL_STATES = frozenset(
    {
        ReleaseState.PROMOTED,
        ReleaseState.ROLLED_BACK,
        ReleaseState.ABORTED,
        ReleaseState.REJECTED,
        ReleaseState.FAILED,
    }
)
ACTIVE_STATES = frozenset(set(ReleaseState.values) - TERMINAL_STATES)
# Active, but the engine has nothing to do until a person acts (approves, resumes).
WAITING_FOR_A_PERSON = frozenset({ReleaseState.AWAITING_APPROVAL, ReleaseState.PAUSED})
# The engine is walking the plan: a person may pause these, and resuming one changes nothing.
RUNNING_STATES = frozenset(
    {
        ReleaseState.APPROVED,
        ReleaseState.STAGING,
        ReleaseState.REHEARSAL,
        ReleaseState.PROGRESSING,
    }
)
# Ended before the end of its plan, at the step it had reached (a rejected release never
# started its plan; a promoted one finished it).
ENDED_SHORT_STATES = frozenset(
    {ReleaseState.FAILED, ReleaseState.ROLLED_BACK, ReleaseState.ABORTED}
)

# The one table of allowed transitions (checked in engine.transition()).
RELEASE_TRANSITIONS: dict[str, frozenset[str]] = {
    ReleaseState.AWAITING_APPROVAL: frozenset(
        {ReleaseState.APPROVED, ReleaseState.REJECTED, ReleaseState.ABORTED}
    ),
    ReleaseState.APPROVED: frozenset(
        {
            ReleaseState.STAGING,
            ReleaseState.PROGRESSING,
            ReleaseState.PAUSED,
            ReleaseState.ABORTED,
            ReleaseState.FAILED,
        }
    ),
    ReleaseState.STAGING: frozenset(
        {ReleaseState.REHEARSAL, ReleaseState.PAUSED, ReleaseState.ABORTED, ReleaseState.FAILED}
    ),
    ReleaseState.REHEARSAL: frozenset(
        {ReleaseState.PROGRESSING, ReleaseState.PAUSED, ReleaseState.ABORTED, ReleaseState.FAILED}
    ),
    ReleaseState.PROGRESSING: frozenset(
        {
            ReleaseState.PROMOTED,
            ReleaseState.PAUSED,
            ReleaseState.ROLLING_BACK,
            ReleaseState.ABORTED,
            ReleaseState.FAILED,
        }
    ),
    ReleaseState.PAUSED: frozenset(
        {
            ReleaseState.APPROVED,
            ReleaseState.STAGING,
            ReleaseState.REHEARSAL,
            ReleaseState.PROGRESSING,
            ReleaseState.ROLLING_BACK,
            ReleaseState.ABORTED,
            ReleaseState.FAILED,
        }
    ),
    # FAILED only when every attempt of its rollback failed (engine/rollback.py): a person must act.
    ReleaseState.ROLLING_BACK: frozenset(
        {ReleaseState.ROLLED_BACK, ReleaseState.ABORTED, ReleaseState.FAILED}
    ),
    ReleaseState.PROMOTED: frozenset({ReleaseState.ROLLED_BACK}),
    ReleaseState.ROLLED_BACK: frozenset(),
    ReleaseState.ABORTED: frozenset(),
    ReleaseState.REJECTED: frozenset(),
    ReleaseState.FAILED: frozenset(),
}


class ReleaseQuerySet(TeamScopedQuerySet):
    def active(self) -> ReleaseQuerySet:
        return self.filter(state__in=ACTIVE_STATES)


class Release(models.Model):
    """Desired state: this version, serving this deployment, reached by this plan."""

    team_path = "deployment__model__team_id"

    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="releases")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="releases")
    from_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    config = models.ForeignKey(DeploymentConfig, on_delete=models.PROTECT, related_name="+")
    strategy = models.CharField(max_length=20, choices=Strategy.choices)
    # The frozen list of steps (staging, rehearsal, production) and where we are in it: each
    # is an engine.PlanStep's to_json() (read them with engine.steps_of / engine.current_step).
    plan = models.JSONField(default=list)
    step_index = models.PositiveIntegerField(default=0)
    step_started_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(
        max_length=30,
        choices=ReleaseState.choices,
        default=ReleaseState.AWAITING_APPROVAL,
        db_index=True,
    )
    paused_from = models.CharField(max_length=30, blank=True)
    status_reason = models.TextField(blank=True)
    # A person aborted the release: once the rollback under way is done, it ends aborted rather
    # than rolled back (policy.is_aborting).
    aborting = models.BooleanField(default=False)
    required_approvals = models.PositiveSmallIntegerField(default=0)
    inconclusive_notified = models.BooleanField(default=False)
    traffic = models.JSONField(default=dict, blank=True)  # last split we applied, for the pages
    next_reconcile_at = models.DateTimeField(null=True, blank=True, db_index=True)
    reconcile_count = models.PositiveIntegerField(default=0)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_label = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ReleaseQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # At most one active release per deployment: a second request gets 409.
            models.UniqueConstraint(
                fields=["deployment"],
                condition=Q(state__in=sorted(ACTIVE_STATES)),
                name="one_active_release_per_deployment",
            ),
        ]

    def __str__(self) -> str:
        return f"release #{self.pk} {self.deployment.name} v{self.version.number}"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


class ReleaseStep(models.Model):
    """Evidence: one transition or action, who or what decided it, when, and the numbers."""

    team_path = "release__deployment__model__team_id"

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="steps")
    kind = models.CharField(max_length=40)
    plan_index = models.IntegerField(null=True, blank=True)
    from_state = models.CharField(max_length=30, blank=True)
    to_state = models.CharField(max_length=30, blank=True)
    outcome = models.CharField(max_length=20, blank=True)  # ok, pass, fail, inconclusive, ...
    actor_label = models.CharField(max_length=200)
    reason = models.TextField(blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["release", "id"]

    def __str__(self) -> str:
        return f"{self.release_id}:{self.kind}:{self.outcome}"


class ApprovalDecision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class Approval(models.Model):
    team_path = "release__deployment__model__team_id"

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="approvals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=10, choices=ApprovalDecision.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["release", "created_at"]
        constraints = [models.UniqueConstraint(fields=["release", "user"], name="uniq_approval")]

    def __str__(self) -> str:
        return f"{self.user} {self.decision}s {self.release_id}"


class RollbackState(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Rollback(models.Model):
    """One press of the rollback button (or an automatic rollback): all traffic back to a
    version that was promoted and healthy, then the rest scaled down."""

    team_path = "deployment__model__team_id"

    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="rollbacks")
    release = models.ForeignKey(
        Release, null=True, blank=True, on_delete=models.SET_NULL, related_name="rollbacks"
    )
    from_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(
        max_length=10, choices=RollbackState.choices, default=RollbackState.PENDING
    )
    actor_label = models.CharField(max_length=200)
    reason = models.TextField(blank=True)
    automatic = models.BooleanField(default=False)
    evidence = models.JSONField(default=dict, blank=True)
    # On the engine's clock (core.clock), because the rollback's progress deadline counts from
    # here: a wall-clock stamp against a moved engine clock would end a rollback at once.
    created_at = models.DateTimeField(default=clock.now, editable=False)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"rollback of {self.deployment.name} to v{self.to_version.number}"
