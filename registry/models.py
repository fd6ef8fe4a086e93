"""Registry tables: teams and memberships, models, immutable model versions, aliases, API tokens,
idempotency records and the append-only audit log. Writes happen in services.py, never here."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

ROLE_RANK = {"viewer": 1, "maintainer": 2, "owner": 3}


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    MAINTAINER = "maintainer", "Maintainer"
    VIEWER = "viewer", "Viewer"


class Team(models.Model):
    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    """A user's role in a team, plus the duties that are not a rank (approving, on-call,
    reviewing) and that later issues route work by."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    is_approver = models.BooleanField(default=False)
    is_on_call = models.BooleanField(default=False)
    is_reviewer = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="uniq_membership_team_user")
        ]
        ordering = ["team__slug", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} as {self.role}"


class TeamScopedQuerySet(models.QuerySet):
    """The one door to objects that belong to a team: `visible_to(principal)` keeps the rows of
    the teams the principal may read (controlplane.permissions decides which)."""

    team_path = "team_id"

    def visible_to(self, principal: Any) -> TeamScopedQuerySet:
        from controlplane.permissions import visible_team_ids

        team_ids = visible_team_ids(principal)
        return self if team_ids is None else self.filter(**{f"{self.team_path}__in": team_ids})


class RiskTier(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class RegisteredModelQuerySet(TeamScopedQuerySet):
    team_path = "team_id"


class RegisteredModel(models.Model):
    """A model as the platform knows it: a name, an owning team and a risk tier."""

    name = models.SlugField(max_length=63, unique=True)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="models")
    risk_tier = models.CharField(max_length=10, choices=RiskTier.choices, default=RiskTier.MEDIUM)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    # The last version number handed out: versions are numbered by the server, monotonic per model.
    last_version_number = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RegisteredModelQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "model"

    def __str__(self) -> str:
        return self.name


class VersionStatus(models.TextChoices):
    REGISTERED = "registered", "Registered"
    VALIDATED = "validated", "Validated"
    APPROVED = "approved", "Approved"
    DEPRECATED = "deprecated", "Deprecated"
    ARCHIVED = "archived", "Archived"


# The one table of allowed lifecycle moves (checked in services.version_update).
VERSION_STATUS_TRANSITIONS: dict[str, set[str]] = {
    VersionStatus.REGISTERED: {
        VersionStatus.VALIDATED,
        VersionStatus.DEPRECATED,
        VersionStatus.ARCHIVED,
    },
    VersionStatus.VALIDATED: {
        VersionStatus.APPROVED,
        VersionStatus.DEPRECATED,
        VersionStatus.ARCHIVED,
    },
    VersionStatus.APPROVED: {VersionStatus.DEPRECATED, VersionStatus.ARCHIVED},
    VersionStatus.DEPRECATED: {VersionStatus.APPROVED, VersionStatus.ARCHIVED},
    VersionStatus.ARCHIVED: set(),
}


class ModelVersionQuerySet(TeamScopedQuerySet):
    team_path = "model__team_id"


class ModelVersion(models.Model):
    """One immutable build of a model: what to run (artifact by digest), how (config), on what
    input (schemas), and where it came from (lineage). Only status and tags change later."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    artifact_uri = models.CharField(max_length=2000)
    artifact_digest = models.CharField(max_length=71)  # "sha256:" + 64 hex
    digest_verified = models.BooleanField(default=False)
    image = models.CharField(max_length=500, blank=True)
    framework = models.CharField(max_length=50, blank=True)
    config = models.JSONField(default=dict, blank=True)
    input_schema = models.JSONField(default=dict)
    output_schema = models.JSONField(default=dict, blank=True)
    example_requests = models.JSONField(default=list, blank=True)
    training_metrics = models.JSONField(default=dict, blank=True)
    baseline_profile = models.JSONField(default=dict, blank=True)
    source_commit = models.CharField(max_length=64, blank=True)
    ci_run_url = models.URLField(max_length=2000, blank=True)
    training_data_ref = models.CharField(max_length=2000, blank=True)
    status = models.CharField(
        max_length=20, choices=VersionStatus.choices, default=VersionStatus.REGISTERED
    )
    tags = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_token = models.ForeignKey(
        "ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ModelVersionQuerySet.as_manager()

    # Fields a caller may change after registration; everything else is immutable.
    MUTABLE_FIELDS = ("status", "tags")

    class Meta:
        ordering = ["model__name", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="uniq_version_number"),
            models.CheckConstraint(
                condition=Q(artifact_digest__regex=r"^sha256:[0-9a-f]{64}$"),
                name="version_digest_is_sha256",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.number}"

    @property
    def created_by_label(self) -> str:
        if self.created_by_id:
            return str(self.created_by)
        if self.created_by_token_id:
            return f"token:{self.created_by_token.prefix}"  # type: ignore[union-attr]
        return ""


class Alias(models.Model):
    """A movable name for one version of a model (`champion`, `challenger`), as in MLflow."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    name = models.SlugField(max_length=63)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="aliases")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model__name", "name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="uniq_alias")]

    def __str__(self) -> str:
        return f"{self.model.name}@{self.name}"


class TokenScope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write"


class ApiTokenQuerySet(models.QuerySet):
    def active(self) -> ApiTokenQuerySet:
        from django.utils import timezone

        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


class ApiToken(models.Model):
    """A team's CI credential. The secret is shown once at creation; only its SHA-256 is kept
    (the secret is 256 random bits, so a fast hash is enough, as GitHub does)."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["team__slug", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="uniq_token_name_per_team")
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class IdempotencyRecord(models.Model):
    """The first answer to a POST carrying an Idempotency-Key, replayed for retries."""

    principal = models.CharField(max_length=100)
    key = models.CharField(max_length=200)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    body_sha256 = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["principal", "key"], name="uniq_idempotency_key")
        ]

    def __str__(self) -> str:
        return f"{self.principal} {self.key}"


class ActorType(models.TextChoices):
    USER = "user", "User"
    TOKEN = "token", "API token"
    SYSTEM = "system", "System"


class AuditEventQuerySet(TeamScopedQuerySet):
    team_path = "team_id"


class AuditEvent(models.Model):
    """Append-only record of a state change. On PostgreSQL a trigger refuses UPDATE and DELETE;
    never holds secrets (token values, passwords): only names and references."""

    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100)
    target_id = models.CharField(max_length=64)
    target_label = models.CharField(max_length=300)
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    remote_addr = models.CharField(max_length=64, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        when = f"{self.occurred_at:%Y-%m-%d %H:%M:%S}"
        return f"{when} {self.actor_label} {self.action} {self.target_label}"
