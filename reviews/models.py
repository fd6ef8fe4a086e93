"""Tables of the human review queues. Every row belongs to one team (`team_path`), so the one
door of identity (`visible_to`) and `permissions.team_id_of` work on them unchanged. Times that
claims, SLAs and retention compare come from the engine's clock (`core.clock`), so tests move
time instead of sleeping. Writes happen in the service modules, never here.

Privacy: `input_summary` holds only the fields the model's package declares, is never logged,
never audited and is emptied after the retention period (the decision stays)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from core import clock
from deployments.models import Deployment
from identity.models import Team, TeamScopedQuerySet
from registry.models import ModelVersion


class ReviewMode(models.TextChoices):
    HELD = "held", "Held (final only after review)"
    AUDITED = "audited", "Audited (stands now, reviewed after)"


class ReviewReason(models.TextChoices):
    HIGH_RISK = "high_risk", "Every prediction of a high-risk model"
    LOW_CONFIDENCE = "low_confidence", "Confidence below the threshold"
    SAMPLED = "sampled", "Random sample"
    CLASS_LISTED = "class_listed", "Output in a reviewed class"


class ReviewStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a reviewer"
    CLAIMED = "claimed", "Claimed by a reviewer"
    DECIDED = "decided", "Decided"


class Decision(models.TextChoices):
    CONFIRM = "confirm", "Confirm"
    OVERRIDE = "override", "Override"


OPEN_REVIEW_STATES = frozenset({ReviewStatus.PENDING, ReviewStatus.CLAIMED})


class ReviewItemQuerySet(TeamScopedQuerySet):
    def open(self) -> ReviewItemQuerySet:
        return self.filter(status__in=OPEN_REVIEW_STATES)


class ReviewItem(models.Model):
    """One prediction a person must look at. `ref` is the caller's handle (the serving process
    makes it before the control plane has seen the item, so a retried submission is the same
    item). `level` is 1 for the first review and 2 for an appeal, whose decision is final.
    A claim is a lease: `claimed_by` holds it until `claim_expires_at`; after that anyone with
    the reviewer duty may take it again."""

    team_path = "team_id"

    ref = models.CharField(max_length=64, unique=True)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="review_items")
    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="review_items"
    )
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    # The deployment config revision whose policy selected the item (policies are versioned).
    config_revision = models.PositiveIntegerField(null=True, blank=True)
    track = models.CharField(max_length=20, blank=True)
    request_id = models.CharField(max_length=128)
    mode = models.CharField(max_length=10, choices=ReviewMode.choices)
    reason = models.CharField(max_length=20, choices=ReviewReason.choices)
    prediction = models.JSONField()
    confidence = models.FloatField(null=True, blank=True)
    input_summary = models.JSONField(null=True, blank=True)
    summary_purged_at = models.DateTimeField(null=True, blank=True)
    explanation = models.JSONField(null=True, blank=True)

    level = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(
        max_length=10, choices=ReviewStatus.choices, default=ReviewStatus.PENDING, db_index=True
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    sla_deadline = models.DateTimeField(db_index=True)
    sla_breached_at = models.DateTimeField(null=True, blank=True)

    # The latest decision (level 1, or level 2 after an appeal); the history is in ReviewEvent.
    decision = models.CharField(max_length=10, choices=Decision.choices, blank=True)
    final_output = models.JSONField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    # Whoever decided level 1: an appeal never goes back to them.
    first_decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ReviewItemQuerySet.as_manager()

    class Meta:
        ordering = ["sla_deadline", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "request_id"], name="uniq_review_request"
            ),
            models.CheckConstraint(condition=Q(level__in=[1, 2]), name="review_level_1_or_2"),
        ]
        indexes = [
            models.Index(fields=["team", "status", "sla_deadline"], name="review_queue"),
            models.Index(fields=["deployment", "model_version", "status"], name="review_outcomes"),
            models.Index(fields=["created_at"], name="review_created"),
            # The queue's "decided" tab: recent decisions newest first, read from the index up
            # to the page (team_id included: what `visible_to` and the reviewer teams filter).
            models.Index(
                fields=["status", "-decided_at", "-id"], include=["team"], name="review_decided"
            ),
        ]

    def __str__(self) -> str:
        return f"review {self.ref}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_REVIEW_STATES

    @property
    def is_final(self) -> bool:
        """Decided, and no appeal can change it any more (level 2), or decided at level 1."""
        return self.status == ReviewStatus.DECIDED

    def claim_holder(self, at=None):  # type: ignore[no-untyped-def]
        """Whoever holds a live claim on the item, or None."""
        if self.status != ReviewStatus.CLAIMED or self.claim_expires_at is None:
            return None
        if self.claim_expires_at <= (at or clock.now()):
            return None
        return self.claimed_by


class Appeal(models.Model):
    """A subject's appeal of a level-1 decision: it reopens the item at level 2. One per item."""

    team_path = "item__team_id"

    item = models.OneToOneField(ReviewItem, on_delete=models.CASCADE, related_name="appeal")
    statement = models.TextField(max_length=4000)
    submitted_by_label = models.CharField(max_length=200)
    # The level-1 decision it appeals, kept as it was.
    appealed_decision = models.CharField(max_length=10, choices=Decision.choices)
    appealed_output = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"appeal of {self.item.ref}"


class ReviewEventKind(models.TextChoices):
    SUBMITTED = "submitted", "Submitted"
    CLAIMED = "claimed", "Claimed"
    RELEASED = "released", "Claim released"
    CLAIM_EXPIRED = "claim_expired", "Claim expired"
    DECIDED = "decided", "Decided"
    APPEALED = "appealed", "Appealed"
    SLA_BREACHED = "sla_breached", "SLA breached"
    SUMMARY_PURGED = "summary_purged", "Input summary deleted (retention)"
    CALLBACK = "callback", "Outcome delivered"


class ReviewEvent(models.Model):
    """The history of an item: who did what, when. `detail` never holds the input summary."""

    team_path = "item__team_id"

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=ReviewEventKind.choices)
    level = models.PositiveSmallIntegerField(default=1)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["item", "created_at"], name="review_event_item")]

    def __str__(self) -> str:
        return f"{self.item.ref} {self.kind}"


class CallbackStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class CallbackDelivery(models.Model):
    """One final decision pushed to the deployment's callback URL: one row per (item, level),
    with its attempts counted and the last answer kept."""

    team_path = "item__team_id"

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="callbacks")
    level = models.PositiveSmallIntegerField()
    url = models.CharField(max_length=2000)
    status = models.CharField(
        max_length=10, choices=CallbackStatus.choices, default=CallbackStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["item", "level"], name="uniq_callback_item_level")
        ]

    def __str__(self) -> str:
        return f"callback {self.item.ref} level {self.level}"
