"""Alertmanager's alerts, taken in (webhook payload version 4): each alert by its own status,
deduplicated by Alertmanager's fingerprint, mapped by its labels to a deployment of the posting
token's team. It never touches or reveals another team's objects, and never drops an alert whose
labels name nothing here: that alert lands on the team's triage list. State changes go through
`alerts.lifecycle`, like every other source's."""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core import clock
from core.errors import Forbidden
from deployments.models import Deployment
from deployments.runtime.base import Track
from identity.audit import Actor
from identity.models import Team
from identity.permissions import Action, require
from identity.principals import is_token
from registry.models import RegisteredModel

from . import lifecycle
from .models import OPEN_ALERT_STATES, Alert, AlertSource, AlertStatus, Severity

logger = logging.getLogger(__name__)

# The labels that place an alert, first match wins (docs/alertmanager.md). The exported rules
# (alerts.prometheus_rules) put all of them on every alert they define.
LABEL_DEPLOYMENT_ID = "modelplane_deployment"  # a deployment's id
LABEL_MODEL = "model"  # a registered model's name, with LABEL_ENVIRONMENT
LABEL_DEPLOYMENT_NAME = "deployment"  # a deployment's name, with LABEL_ENVIRONMENT
LABEL_ENVIRONMENT = "environment"
LABEL_SEVERITY = "severity"
LABEL_TRACK = "track"

# Alertmanager setups name severities their own way; the usual words map here, anything else is
# a warning (a person looks, nobody is paged by a word we do not know).
SEVERITY_OF_LABEL = {
    "critical": Severity.CRITICAL,
    "page": Severity.CRITICAL,
    "warning": Severity.WARNING,
    "ticket": Severity.WARNING,
    "info": Severity.INFO,
}

_ID = re.compile(r"[0-9]{1,18}")


class Change:
    """What one alert of a notification did here."""

    FIRED = "fired"
    REFRESHED = "refreshed"
    REOPENED = "reopened"
    RESOLVED = "resolved"
    IGNORED = "ignored"  # a redelivery of what is already known, or a resolve of nothing open


@dataclass(frozen=True)
class IngestResult:
    fired: int = 0
    refreshed: int = 0
    reopened: int = 0
    resolved: int = 0
    ignored: int = 0
    triage: int = 0  # taken as firing with labels that name no deployment of the team
    truncated: int = 0  # Alertmanager left these out (max_alerts); they come in later posts


@dataclass(frozen=True)
class Place:
    deployment: Deployment | None
    model: RegisteredModel | None


def poster_team(principal: Any) -> Team:
    """The team an Alertmanager post speaks for: the one of the token it carries. Sessions are
    refused (a person's rights span teams; a receiver needs one team's write token)."""
    if not is_token(principal):
        raise Forbidden("Alertmanager posts with a team token (Authorization: Bearer mp_...).")
    team = principal.token.team
    require(principal, Action.ALERT_INGEST, team)
    return team


def ingest(payload: dict[str, Any], *, actor: Actor, team: Team) -> IngestResult:
    """Take in one validated notification (see alerts.api.alertmanager.PayloadSerializer: the
    v4 field names, times parsed, endsAt None for Go's zero time). The group's `status` says
    nothing about one alert: a group stays firing while some of its alerts resolve, so each
    alert is read by its own status. The caller holds the transaction."""
    require(actor.principal, Action.ALERT_INGEST, team)
    counts: Counter[str] = Counter()
    places: dict[tuple[str, ...], Place] = {}
    for item in payload["alerts"]:
        labels = item["labels"]
        key = tuple(
            labels.get(name, "")
            for name in (LABEL_DEPLOYMENT_ID, LABEL_MODEL, LABEL_DEPLOYMENT_NAME, LABEL_ENVIRONMENT)
        )
        if key not in places:
            places[key] = place_of(team, labels)
        place = places[key]
        change = _take(item, place, team=team, actor=actor)
        counts[change] += 1
        if place.deployment is None and change in {Change.FIRED, Change.REFRESHED, Change.REOPENED}:
            counts["triage"] += 1
    truncated = payload.get("truncatedAlerts", 0)
    if truncated:
        # The count only: labels and annotations stay out of the logs.
        logger.warning(
            "alertmanager post for team %s left out %d alerts (max_alerts); they arrive later",
            team.slug,
            truncated,
        )
    return IngestResult(
        fired=counts[Change.FIRED],
        refreshed=counts[Change.REFRESHED],
        reopened=counts[Change.REOPENED],
        resolved=counts[Change.RESOLVED],
        ignored=counts[Change.IGNORED],
        triage=counts["triage"],
        truncated=truncated,
    )


def place_of(team: Team, labels: dict[str, str]) -> Place:
    """The deployment of `team` the labels name: by id, else model + environment, else
    deployment name + environment; the first that names one of the team's deployments wins.
    Only the team's own deployments are searched, so another team's id reads as unknown."""
    deployments = Deployment.objects.filter(model__team=team).select_related("model")
    found: Deployment | None = None
    reference = labels.get(LABEL_DEPLOYMENT_ID, "")
    if _ID.fullmatch(reference):
        found = deployments.filter(pk=int(reference)).first()
    environment = labels.get(LABEL_ENVIRONMENT, "")
    if found is None and environment and labels.get(LABEL_MODEL):
        found = deployments.filter(
            model__name=labels[LABEL_MODEL], environment__name=environment
        ).first()
    if found is None and environment and labels.get(LABEL_DEPLOYMENT_NAME):
        found = deployments.filter(
            name=labels[LABEL_DEPLOYMENT_NAME], environment__name=environment
        ).first()
    if found is not None:
        return Place(found, found.model)
    model = None
    if labels.get(LABEL_MODEL):
        model = RegisteredModel.objects.filter(team=team, name=labels[LABEL_MODEL]).first()
    return Place(None, model)


def severity_of(labels: dict[str, str]) -> str:
    return SEVERITY_OF_LABEL.get(labels.get(LABEL_SEVERITY, "").strip().lower(), Severity.WARNING)


def _occurrence_start(alert: Alert) -> datetime:
    """When the occurrence this alert last stood for began in Alertmanager. A reopened alert
    keeps its first `starts_at`, so the latest occurrence's start is kept in its evidence."""
    text = alert.evidence.get("startsAt") if isinstance(alert.evidence, dict) else None
    if isinstance(text, str):
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    return alert.starts_at


def _take(item: dict[str, Any], place: Place, *, team: Team, actor: Actor) -> str:
    """One alert of a notification. Alertmanager re-sends on retries and on repeat_interval, so
    everything here must be a no-op the second time: an occurrence is (fingerprint, startsAt),
    and an occurrence older than the one this alert stands for changes nothing."""
    fingerprint = item["fingerprint"]
    starts_at: datetime = item["startsAt"]
    identity = Alert.objects.filter(
        team=team, source=AlertSource.ALERTMANAGER, fingerprint=fingerprint
    )
    open_alert = identity.filter(status__in=OPEN_ALERT_STATES).select_for_update().first()
    if item["status"] == AlertStatus.RESOLVED:
        if open_alert is None or starts_at < _occurrence_start(open_alert):
            return Change.IGNORED  # already resolved, never seen firing, or an older occurrence
        now = clock.now()
        ends_at = item["endsAt"] or now
        lifecycle.clear(
            team=team,
            source=AlertSource.ALERTMANAGER,
            fingerprint=fingerprint,
            actor=actor,
            reason="resolved in Alertmanager",
            at=min(ends_at, now),
        )
        return Change.RESOLVED
    if open_alert is not None:
        if starts_at < _occurrence_start(open_alert):
            return Change.IGNORED
    else:
        latest = (
            identity.filter(status=AlertStatus.RESOLVED).order_by("-resolved_at", "-id").first()
        )
        # A firing that began before the resolve we hold is that occurrence, delivered late (a
        # retry, or a repeat sent before the resolve): it must not reopen. Resolved by hand
        # while Alertmanager still fires it: the person's word holds until a new occurrence.
        if latest is not None and starts_at <= max(
            latest.resolved_at or latest.starts_at, _occurrence_start(latest)
        ):
            return Change.IGNORED
    outcome = lifecycle.fire(_signal(item, place, team), actor=actor)
    return outcome.change


def _signal(item: dict[str, Any], place: Place, team: Team) -> lifecycle.Signal:
    labels: dict[str, str] = item["labels"]
    annotations: dict[str, str] = item["annotations"]
    fingerprint = item["fingerprint"]
    alertname = labels.get("alertname", "")
    track = labels.get(LABEL_TRACK, "")
    return lifecycle.Signal(
        team=team,
        source=AlertSource.ALERTMANAGER,
        fingerprint=fingerprint,
        rule=alertname or "alertmanager",
        title=annotations.get("summary") or alertname or f"Alertmanager alert {fingerprint}",
        severity=severity_of(labels),
        summary=annotations.get("description", ""),
        track=track if track in set(Track) else "",
        model=place.model,
        deployment=place.deployment,
        labels=labels,
        annotations=annotations,
        evidence={"startsAt": item["startsAt"].isoformat()},
        generator_url=item["generatorURL"],
        needs_triage=place.deployment is None,
        starts_at=item["startsAt"],
    )
