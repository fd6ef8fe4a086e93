"""Registry tables: models, immutable model versions and aliases. Teams, tokens and the audit
log belong to `identity`. Writes happen in services.py, never here."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from identity.models import ApiToken, Team, TeamScopedQuerySet


class RiskTier(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class RegisteredModel(models.Model):
    """A model as the platform knows it: a name, an owning team and a risk tier."""

    team_path = "team_id"

    name = models.SlugField(max_length=63, unique=True)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="models")
    risk_tier = models.CharField(max_length=10, choices=RiskTier.choices, default=RiskTier.MEDIUM)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    # The last version number handed out: versions are numbered by the server, monotonic per model.
    last_version_number = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TeamScopedQuerySet.as_manager()

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


class ModelVersion(models.Model):
    """One immutable build of a model: what to run (artifact by digest), how (config), on what
    input (schemas), and where it came from (lineage). Only status and tags change later."""

    team_path = "model__team_id"

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
        ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TeamScopedQuerySet.as_manager()

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

    team_path = "model__team_id"

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    name = models.SlugField(max_length=63)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="aliases")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model__name", "name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="uniq_alias")]

    def __str__(self) -> str:
        return f"{self.model.name}@{self.name}"
