"""Tables of alerts, on-call and incidents. Every row belongs to one team (`team_path`), so the
one door of identity (`visible_to`) and `permissions.team_id_of` work on them unchanged. Times
that escalation, schedules and reopening compare come from the engine's clock (`core.clock`),
so tests move time instead of sleeping. Writes happen in the service modules, never here."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from core import clock
from deployments.models import Deployment, Release
from identity.models import Team, TeamScopedQuerySet
from registry.models import RegisteredModel


class AlertSource(models.TextChoices):
    RULE = "rule", "Control-plane rule"
    ALERTMANAGER = "alertmanager", "Alertmanager"


class AlertStatus(models.TextChoices):
    FIRING = "firing", "Firing"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


OPEN_ALERT_STATES = frozenset({AlertStatus.FIRING, AlertStatus.ACKNOWLEDGED})


class Severity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    WARNING = "warning", "Warning"
    INFO = "info", "Info"


SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


class AlertQuerySet(TeamScopedQuerySet):
    def open(self) -> AlertQuerySet:
        return self.filter(status__in=OPEN_ALERT_STATES)


class Alert(models.Model):
    """One condition that needs a person, from the moment it fires until it resolves. Its
    identity is (team, source, fingerprint): a control-plane rule's fingerprint is made of
    (rule, deployment, track), Alertmanager's is its own. At most one open alert per identity,
    so an alert that keeps firing stays one alert."""

    team_path = "team_id"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="alerts")
    source = models.CharField(max_length=20, choices=AlertSource.choices)
    fingerprint = models.CharField(max_length=128)
    rule = models.CharField(max_length=100, help_text="rule name, or Alertmanager's alertname")
    track = models.CharField(max_length=20, blank=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    title = models.CharField(max_length=300)
    summary = models.TextField(blank=True)
    model = models.ForeignKey(
        RegisteredModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    release = models.ForeignKey(
        Release, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    # Labels and annotations as received (Alertmanager) or as the rule set them; evidence is the
    # numbers the rule judged. Never a request payload, never a secret.
    labels = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    generator_url = models.CharField(max_length=1000, blank=True)
    # Labels named no deployment of this team: the team's triage list shows it.
    needs_triage = models.BooleanField(default=False)

    status = models.CharField(
        max_length=15, choices=AlertStatus.choices, default=AlertStatus.FIRING, db_index=True
    )
    starts_at = models.DateTimeField(default=clock.now)
    last_seen_at = models.DateTimeField(default=clock.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    silenced_until = models.DateTimeField(null=True, blank=True)
    reopened_count = models.PositiveIntegerField(default=0)

    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_alerts",
    )
    escalation_policy = models.ForeignKey(
        "EscalationPolicy", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    escalation_step = models.PositiveIntegerField(default=0)
    escalation_round = models.PositiveIntegerField(default=0)
    next_escalation_at = models.DateTimeField(null=True, blank=True, db_index=True)
    incident = models.ForeignKey(
        "Incident", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "source", "fingerprint"],
                condition=Q(status__in=sorted(OPEN_ALERT_STATES)),
                name="one_open_alert_per_identity",
            )
        ]
        indexes = [
            models.Index(fields=["team", "source", "fingerprint"], name="alert_identity"),
            models.Index(fields=["deployment", "starts_at"], name="alert_deployment_time"),
            # The alerts page: its open tabs by status, the resolved tab newest first (a page
            # walks the index and stops), and its count read from the index alone (team_id is
            # what `visible_to` filters on).
            models.Index(
                fields=["status", "-resolved_at", "-id"],
                include=["team"],
                name="alert_status_resolved",
            ),
        ]

    def __str__(self) -> str:
        return f"alert #{self.pk} {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_ALERT_STATES

    def is_silenced(self, at=None) -> bool:  # type: ignore[no-untyped-def]
        return self.silenced_until is not None and self.silenced_until > (at or clock.now())


class AlertEventKind(models.TextChoices):
    FIRED = "fired", "Fired"
    REDELIVERED = "redelivered", "Received again"
    ASSIGNED = "assigned", "Assigned"
    ESCALATED = "escalated", "Escalated"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    SILENCED = "silenced", "Silenced"
    REASSIGNED = "reassigned", "Reassigned"
    NOTE = "note", "Note"
    RESOLVED = "resolved", "Resolved"
    REOPENED = "reopened", "Reopened"
    NOTIFIED = "notified", "Notified"
    INCIDENT = "incident", "Added to an incident"


class AlertEvent(models.Model):
    """The timeline of one alert: who or what did what, when, and why."""

    team_path = "alert__team_id"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=AlertEventKind.choices)
    at = models.DateTimeField(default=clock.now)
    actor_label = models.CharField(max_length=200)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["alert", "at", "id"]

    def __str__(self) -> str:
        return f"{self.alert_id}:{self.kind}"


# On-call ------------------------------------------------------------------------------------


class Schedule(models.Model):
    """Who is on call for a team: rotation layers (a later layer wins where it covers) and
    overrides on top. Times are computed in the schedule's time zone (zoneinfo name)."""

    team_path = "team_id"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=100)
    time_zone = models.CharField(max_length=64, default="UTC")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["team__slug", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="uniq_schedule_name_per_team")
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"


class ScheduleLayer(models.Model):
    """A rotation: its members take turns, `shift_hours` each, handing off at the local wall
    time of `rotation_start`. Shifts that are whole days are counted in local calendar days, so
    a daily 09:00 handoff stays at 09:00 across a daylight-saving change. An optional daily
    window (`active_from`..`active_until`, local) leaves the rest of each day uncovered."""

    team_path = "schedule__team_id"

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="layers")
    name = models.CharField(max_length=100)
    position = models.PositiveSmallIntegerField(default=0, help_text="higher wins where it covers")
    rotation_start = models.DateTimeField(help_text="first handoff, stored in UTC")
    shift_hours = models.PositiveIntegerField(default=168)
    active_from = models.TimeField(null=True, blank=True)
    active_until = models.TimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["schedule", "position", "id"]

    def __str__(self) -> str:
        return f"{self.schedule} layer {self.name}"


class LayerMember(models.Model):
    team_path = "layer__schedule__team_id"

    layer = models.ForeignKey(ScheduleLayer, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField()

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["layer", "position"]
        constraints = [
            models.UniqueConstraint(fields=["layer", "position"], name="uniq_layer_position")
        ]

    def __str__(self) -> str:
        return f"{self.layer}: #{self.position} {self.user}"


class ScheduleOverride(models.Model):
    """Someone takes the whole schedule for a while (swap, holiday cover)."""

    team_path = "schedule__team_id"

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="overrides")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.TextField(blank=True)
    created_by_label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["schedule", "starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="override_ends_after_start"
            )
        ]

    def __str__(self) -> str:
        return f"{self.schedule}: {self.user} {self.starts_at:%Y-%m-%d %H:%M}"


class EscalationPolicy(models.Model):
    """Who hears of an unacknowledged alert, step by step, `repeat` more times after the last
    step. A team's default policy routes every alert of the team."""

    team_path = "team_id"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="escalation_policies")
    name = models.CharField(max_length=100)
    repeat = models.PositiveSmallIntegerField(default=0, help_text="extra rounds after the last")
    is_default = models.BooleanField(default=False)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["team__slug", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="uniq_policy_name_per_team"),
            models.UniqueConstraint(
                fields=["team"], condition=Q(is_default=True), name="one_default_policy_per_team"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"


class EscalationTarget(models.TextChoices):
    SCHEDULE = "schedule", "Whoever is on call on a schedule"
    USER = "user", "A person"
    TEAM_OWNERS = "team_owners", "The team's owners"


class EscalationStep(models.Model):
    """Notify this target, then wait `wait_minutes` for an acknowledgement before the next."""

    team_path = "policy__team_id"

    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    target = models.CharField(max_length=20, choices=EscalationTarget.choices)
    schedule = models.ForeignKey(
        Schedule, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    wait_minutes = models.PositiveIntegerField(default=15)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["policy", "position"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "position"], name="uniq_step_position")
        ]

    def __str__(self) -> str:
        return f"{self.policy} step {self.position}"


# Notifications -------------------------------------------------------------------------------


class ChannelKind(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook (Slack-compatible)"


class NotificationChannel(models.Model):
    """A team's outgoing webhook. The URL is a secret (a Slack incoming-webhook URL grants
    posting): only the name of the environment variable that holds it is stored."""

    team_path = "team_id"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="notification_channels")
    name = models.CharField(max_length=100)
    url_env = models.CharField(max_length=100, help_text="environment variable holding the URL")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["team__slug", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="uniq_channel_name_per_team")
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    RETRYING = "retrying", "Retrying"
    FAILED = "failed", "Failed"


class Delivery(models.Model):
    """One notification of one alert state change to one recipient (a person by e-mail, or a
    channel). Unique per (alert, change, recipient): a retry or a second evaluation never sends
    twice. `last_error` says what failed without the URL, the body or any secret."""

    team_path = "alert__team_id"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    change = models.CharField(max_length=60, help_text="e.g. fired, escalated:1:0, resolved")
    kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    recipient = models.CharField(max_length=120, help_text="user:<id> or channel:<id>")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    channel = models.ForeignKey(
        NotificationChannel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["alert", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "change", "recipient"], name="one_delivery_per_change_recipient"
            )
        ]

    def __str__(self) -> str:
        return f"{self.alert_id}:{self.change}:{self.recipient}:{self.status}"


# Incidents -----------------------------------------------------------------------------------


class IncidentStatus(models.TextChoices):
    OPEN = "open", "Open"
    MITIGATED = "mitigated", "Mitigated"
    CLOSED = "closed", "Closed"


class Incident(models.Model):
    """One thing that went wrong, with one owner. Its timeline gathers by itself the alerts of
    its deployment, the releases and rollbacks in its window, and the notes left here."""

    team_path = "team_id"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="incidents")
    deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents"
    )
    title = models.CharField(max_length=300)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    status = models.CharField(
        max_length=10, choices=IncidentStatus.choices, default=IncidentStatus.OPEN, db_index=True
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    opened_by_label = models.CharField(max_length=200)
    opened_at = models.DateTimeField(default=clock.now)
    mitigated_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    summary = models.TextField(blank=True, help_text="the closing summary: notes for next time")

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at", "-id"]

    def __str__(self) -> str:
        return f"incident #{self.pk} {self.title}"


class IncidentEvent(models.Model):
    """What people wrote or decided on an incident (notes, status and owner changes). Alerts,
    releases and rollbacks are not copied here: the timeline reads them where they live."""

    team_path = "incident__team_id"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20)
    at = models.DateTimeField(default=clock.now)
    actor_label = models.CharField(max_length=200)
    text = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["incident", "at", "id"]

    def __str__(self) -> str:
        return f"{self.incident_id}:{self.kind}"
