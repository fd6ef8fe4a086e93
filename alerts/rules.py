"""The control plane's own alert rules, run by Celery beat (task `alerts.evaluate_rules`): SLO
burn rates, drift, the monthly budget, and releases that failed, paused as inconclusive or wait
on a person. Metric rules judge the very numbers the monitoring tiles show (one batched
`deployment_health` for every deployment); release rules judge the releases' states on the
engine's clock. Each rule has an identity (rule, deployment, track): a condition that keeps
holding refreshes its one alert, a condition judged and found clear resolves it.

It must never resolve an alert on missing numbers (a source down or no data is not recovery),
and never change an alert except through `alerts.lifecycle`."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Prefetch
from django.utils import timezone

from core import clock
from deployments import selectors as deployment_selectors
from deployments.models import (
    WAITING_FOR_A_PERSON,
    Deployment,
    Release,
    ReleaseState,
    ReleaseStep,
)
from identity.audit import Actor
from monitoring import selectors as monitoring_selectors
from monitoring.drift import DriftReport, DriftStatus
from monitoring.health import DeploymentHealth, TrackHealth
from monitoring.slo import DEFAULT_BURN_RATE_RULES, SLO_WINDOW, BurnRateRule
from monitoring.slo import Severity as BurnSeverity
from monitoring.tiles import Tile
from monitoring.wording import duration_label, money, percent

from . import lifecycle
from .models import OPEN_ALERT_STATES, Alert, AlertSource, Severity

log = logging.getLogger(__name__)

ACTOR = Actor.system("alert-rules")
# The window of the metric rules' numbers: the monitoring pages' default window, so an alert
# and the tiles it points at say the same thing.
WINDOW_SECONDS = monitoring_selectors.WINDOWS[monitoring_selectors.DEFAULT_WINDOW]
STEP_SECONDS = WINDOW_SECONDS / monitoring_selectors.SPARK_POINTS
TIMES = "\N{MULTIPLICATION SIGN}"
# The outcome of the engine's pause step when an analysis could not decide (engine.loop._pause).
INCONCLUSIVE = "inconclusive"


class Rule(StrEnum):
    SLO_BURN = "slo_burn"
    DRIFT = "drift"
    COST_BUDGET = "cost_budget"
    RELEASE_FAILED = "release_failed"
    RELEASE_INCONCLUSIVE = "release_inconclusive"
    RELEASE_WAITING = "release_waiting"


# Rule alerts that higher apps fire and clear themselves through alerts.lifecycle (reviews/sla.py:
# one per deployment with review items past their SLA). This sweep neither judges nor resolves
# them; without this it would resolve them as rules that "no longer exist".
FOREIGN_RULES = frozenset({"review_sla"})
RULE_NAMES = frozenset(rule.value for rule in Rule)
# Rules judged per track from the track's metrics: their alert goes when the track does.
TRACK_RULES = frozenset({Rule.SLO_BURN, Rule.DRIFT})
BURN_SEVERITY = {BurnSeverity.PAGE: Severity.CRITICAL, BurnSeverity.TICKET: Severity.WARNING}


def release_failed_lookback() -> timedelta:
    return timedelta(
        seconds=float(getattr(settings, "ALERTS_RELEASE_FAILED_LOOKBACK_SECONDS", 24 * 3600))
    )


def release_wait_limit() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "ALERTS_RELEASE_WAIT_SECONDS", 4 * 3600)))


def fingerprint(rule: str, deployment_id: int, track: str = "", *, variant: str = "") -> str:
    """A rule alert's identity: rule (with its variant, e.g. the burn windows), deployment and
    track ("" for a deployment-wide rule)."""
    name = f"{rule}:{variant}" if variant else rule
    return f"{name}:{deployment_id}:{track}"


def burn_fingerprint(rule: BurnRateRule, deployment_id: int, track: str) -> str:
    variant = f"{rule.long_window}/{rule.short_window}"
    return fingerprint(Rule.SLO_BURN, deployment_id, track, variant=variant)


@dataclass
class Judgement:
    """One deployment's evaluation: `verdicts` maps each identity that was judged to the signal
    of its holding condition, or to None when judged clear. An identity missing from it was not
    judged (its inputs were unavailable) and keeps its alert as it is. `tracks` are the tracks
    the deployment serves now (None when unknown): a track rule's alert of a track no longer
    served is judged clear."""

    verdicts: dict[str, lifecycle.Signal | None] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    tracks: frozenset[str] | None = None

    def judged(self, key: str, signal: lifecycle.Signal | None, reason: str = "") -> None:
        self.verdicts[key] = signal
        if reason:
            self.reasons[key] = reason

    @property
    def holding(self) -> list[lifecycle.Signal]:
        return [signal for signal in self.verdicts.values() if signal is not None]

    def clear_reason(self, alert: Alert) -> str | None:
        """Why this open alert resolves now, or None when it stays as it is."""
        if alert.fingerprint in self.verdicts:
            if self.verdicts[alert.fingerprint] is not None:
                return None
            return self.reasons.get(alert.fingerprint, "the condition no longer holds")
        if alert.rule not in RULE_NAMES:
            return f"the rule {alert.rule!r} no longer exists"
        if alert.rule in TRACK_RULES and self.tracks is not None and alert.track not in self.tracks:
            return f"nothing serves the {alert.track} track any more"
        return None


# Evaluation ----------------------------------------------------------------------------------


def evaluate_all(now: datetime | None = None) -> int:
    """Judge every rule on every deployment and fire or resolve their alerts, one transaction
    per deployment (a failure is logged and the others go on). Release rules judge at `now`
    (the engine's clock by default); metric rules read the sources' latest numbers, as the
    tiles do. Returns how many conditions hold."""
    now = now or clock.now()
    deployments = list(
        deployment_selectors.deployment_list(None).prefetch_related(*_release_prefetches())
    )
    end = timezone.now().timestamp()
    healths = _healths(deployments, end)
    open_alerts: dict[int, list[Alert]] = {}
    for alert in (
        Alert.objects.filter(
            source=AlertSource.RULE, status__in=OPEN_ALERT_STATES, deployment__isnull=False
        )
        .exclude(rule__in=FOREIGN_RULES)
        .select_related("team")
        .order_by("id")
    ):
        open_alerts.setdefault(alert.deployment_id, []).append(alert)
    holding = 0
    for deployment in deployments:
        try:
            judgement = judge(deployment, healths.get(deployment.pk), now=now, end=end)
            holding += _apply(judgement, open_alerts.get(deployment.pk, []))
        except Exception:  # one bad deployment must not stop the others: log, go on
            log.exception("alert rules failed for deployment %s", deployment.pk)
    return holding


def _release_prefetches() -> tuple[Prefetch, ...]:
    """What the release rules read, in two queries for any number of deployments: the latest
    release of each (a sliced prefetch), and the steps that put each active release in a state
    that waits for a person."""
    latest = Release.objects.select_related("version").order_by("-created_at", "-id")[:1]
    waiting_steps = (
        ReleaseStep.objects.filter(to_state__in=WAITING_FOR_A_PERSON)
        .exclude(from_state=F("to_state"))
        .order_by("id")
    )
    return (
        Prefetch("releases", queryset=latest, to_attr="latest_releases"),
        Prefetch("active_releases__steps", queryset=waiting_steps, to_attr="waiting_steps"),
    )


def _healths(deployments: Sequence[Deployment], end: float) -> dict[int, DeploymentHealth]:
    """The tiles' numbers for every deployment, each metrics source asked once; none when the
    monitoring code itself fails (then no metric rule is judged, and no alert resolves)."""
    try:
        found = monitoring_selectors.deployment_health(
            deployments, WINDOW_SECONDS, STEP_SECONDS, end=end
        )
    except Exception:  # the release rules still run without the metrics
        log.exception("deployment health failed: metric rules are not judged this round")
        return {}
    return {health.deployment.pk: health for health in found}


def _apply(judgement: Judgement, open_alerts: Iterable[Alert]) -> int:
    """Fire what holds and resolve what was judged clear, in one transaction."""
    stale = [(alert, reason) for alert in open_alerts if (reason := judgement.clear_reason(alert))]
    holding = judgement.holding
    if not (holding or stale):
        return 0  # nothing to write: a healthy fleet costs no transaction
    with transaction.atomic():
        for signal in holding:
            lifecycle.fire(signal, actor=ACTOR)
        for alert, reason in stale:
            lifecycle.clear(
                team=alert.team,
                source=AlertSource.RULE,
                fingerprint=alert.fingerprint,
                actor=ACTOR,
                reason=reason,
            )
    return len(holding)


def judge(
    deployment: Deployment, health: DeploymentHealth | None, *, now: datetime, end: float
) -> Judgement:
    """Every rule on one deployment. `health` is its tiles (None: the metric rules are not
    judged); `now` is when release rules judge, `end` the timestamp of the tiles' numbers."""
    judgement = Judgement()
    if health is not None:
        judgement.tracks = frozenset(str(track.track) for track in health.tracks)
        for track in health.tracks:
            _judge_burn(judgement, deployment, track)
            _judge_drift(judgement, deployment, track)
        _judge_budget(judgement, deployment, health, end)
    _judge_release_failed(judgement, deployment, now)
    _judge_active_release(judgement, deployment, now)
    return judgement


def _signal(
    deployment: Deployment,
    rule: Rule,
    key: str,
    *,
    title: str,
    severity: str,
    summary: str,
    track: str = "",
    release: Release | None = None,
    evidence: dict[str, Any],
) -> lifecycle.Signal:
    return lifecycle.Signal(
        team=deployment.model.team,
        source=AlertSource.RULE,
        fingerprint=key,
        rule=rule,
        title=title,
        severity=severity,
        summary=summary,
        track=track,
        model=deployment.model,
        deployment=deployment,
        release=release,
        labels={
            "model": deployment.model.name,
            "environment": deployment.environment.name,
            "deployment": deployment.name,
            "track": track,
            "rule": str(rule),
        },
        evidence=evidence,
    )


def _track_release(deployment: Deployment, track: TrackHealth) -> Release | None:
    """The release whose new version serves this track (none for the stable track)."""
    release = deployment_selectors.active_release(deployment)
    if release is None or release.version.number != track.version_number:
        return None
    return release


# Metric rules ----------------------------------------------------------------------------------


def _rate(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _judge_burn(judgement: Judgement, deployment: Deployment, track: TrackHealth) -> None:
    """slo_burn: each multiwindow rule of monitoring.slo whose long and short windows both burn
    faster than its threshold. Judged when the burn tile has numbers; a rule whose windows the
    source does not keep cannot fire there, and is taken as clear (only a shrunk retention
    could leave one of its alerts open)."""
    tile = track.tile("burn")
    if tile is None or not tile.has_data:
        return
    config = deployment.config
    firing = {(a.long_window, a.short_window): a for a in track.burn_alerts}
    name = f"{deployment.model.name} v{track.version_number} ({track.track})"
    for rule in DEFAULT_BURN_RATE_RULES:
        key = burn_fingerprint(rule, deployment.pk, track.track)
        found = firing.get((rule.long_window, rule.short_window))
        if found is None:
            judgement.judged(
                key,
                None,
                f"the {rule.long_window}/{rule.short_window} burn rates are back under "
                f"{rule.threshold:g}x ({tile.detail})",
            )
            continue
        long_rate = found.burn_rates[found.long_window]
        short_rate = found.burn_rates[found.short_window]
        objective = config.slo_availability
        summary = (
            f"Over the last {found.long_window} and {found.short_window}, "
            f"v{track.version_number} in {deployment.environment.name} spent its error budget "
            f"{_rate(long_rate)} and {_rate(short_rate)} times as fast as a {objective:.3%} "
            f"availability SLO allows over {SLO_WINDOW}: both above the {found.threshold:g}x "
            f"of the {found.severity} rule."
        )
        judgement.judged(
            key,
            _signal(
                deployment,
                Rule.SLO_BURN,
                key,
                title=(
                    f"{name} burns its error budget {_rate(long_rate)}{TIMES} "
                    f"({found.long_window}) and {_rate(short_rate)}{TIMES} ({found.short_window})"
                ),
                severity=BURN_SEVERITY[found.severity],
                summary=summary,
                track=track.track,
                release=_track_release(deployment, track),
                evidence={
                    **found.as_dict(),
                    "objective": objective,
                    "version": track.version_number,
                },
            ),
        )


def _alerting_features(report: DriftReport) -> list[tuple[str, str, float]]:
    """(feature, metric, value) of every feature at the alert level, worst first."""
    found = [
        (drift.name, drift.metric, drift.value)
        for drift in (*report.features.values(), report.prediction)
        if drift is not None and drift.status == DriftStatus.ALERT and drift.value is not None
    ]
    return sorted(found, key=lambda item: -item[2])


def _judge_drift(judgement: Judgement, deployment: Deployment, track: TrackHealth) -> None:
    """drift: the track's drift report is at the alert level (PSI at or above the config's
    drift_alert, or a categorical feature's JS distance at its alert limit). Not judged
    without a report, or while too few live observations leave it insufficient."""
    report = track.drift
    if report is None or report.status == DriftStatus.INSUFFICIENT_DATA:
        return
    key = fingerprint(Rule.DRIFT, deployment.pk, track.track)
    thresholds = report.thresholds
    if report.status != DriftStatus.ALERT:
        judgement.judged(
            key, None, f"drift is {report.status} (alert at PSI ≥ {thresholds.alert:g})"
        )
        return
    features = _alerting_features(report)
    worst, metric, value = features[0]
    limit = thresholds.alert if metric == "psi" else thresholds.js_alert
    label = "PSI" if metric == "psi" else "JS distance"
    others = f" and {len(features) - 1} more" if len(features) > 1 else ""
    judgement.judged(
        key,
        _signal(
            deployment,
            Rule.DRIFT,
            key,
            title=(
                f"{deployment.model.name} v{track.version_number} ({track.track}) drifts from "
                f"its baseline: {worst} {label} {value:.3f} ≥ {limit:g}"
            ),
            severity=Severity.WARNING,
            summary=(
                f"Live inputs of v{track.version_number} in {deployment.environment.name} over "
                f"the last {duration_label(WINDOW_SECONDS)} differ from its baseline profile: "
                f"{worst}{others} at the alert level."
            ),
            track=track.track,
            release=_track_release(deployment, track),
            evidence={
                "status": str(report.status),
                "features": [{"name": name, "metric": m, "value": v} for name, m, v in features],
                "thresholds": {
                    "psi_warn": thresholds.warn,
                    "psi_alert": thresholds.alert,
                    "js_warn": thresholds.js_warn,
                    "js_alert": thresholds.js_alert,
                },
                "version": track.version_number,
                "window_seconds": WINDOW_SECONDS,
            },
        ),
    )


def _tile(tiles: Iterable[Tile], key: str) -> Tile | None:
    return next((tile for tile in tiles if tile.key == key), None)


def _month_end(end: float) -> datetime:
    moment = datetime.fromtimestamp(end, tz=timezone.get_current_timezone())
    month_start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (month_start + timedelta(days=32)).replace(day=1)


def _judge_budget(
    judgement: Judgement, deployment: Deployment, health: DeploymentHealth, end: float
) -> None:
    """cost_budget: the month's projected spend (the budget tile's month to date, plus the
    cost-per-hour tile's rate until the month ends) exceeds the monthly budget. A deployment
    without a budget is judged clear; one without prices is not judged."""
    key = fingerprint(Rule.COST_BUDGET, deployment.pk)
    budget_tile = _tile(health.tiles, "budget")
    cost_tile = _tile(health.tiles, "cost_total")
    config = deployment.config
    if budget_tile is None or not budget_tile.has_data:
        return
    if config is None or config.monthly_budget is None or budget_tile.value is None:
        judgement.judged(key, None, "no monthly budget is set")
        return
    if cost_tile is None or cost_tile.value is None:
        return
    budget = float(config.monthly_budget)
    spent = budget_tile.value * budget
    hours_left = max((_month_end(end).timestamp() - end) / 3600, 0.0)
    projected = spent + cost_tile.value * hours_left
    if not math.isfinite(projected) or projected <= budget:
        judgement.judged(
            key, None, f"the month's projected spend {money(projected)} is within the budget"
        )
        return
    judgement.judged(
        key,
        _signal(
            deployment,
            Rule.COST_BUDGET,
            key,
            title=(
                f"{deployment.model.name} in {deployment.environment.name} is on course to spend "
                f"{money(projected)} this month, over its {money(budget)} budget"
            ),
            severity=Severity.WARNING,
            summary=(
                f"{money(spent)} spent so far this month ({percent(budget_tile.value)} of the "
                f"budget) and {money(cost_tile.value)} an hour for the {hours_left:.0f} h left: "
                f"{budget_tile.detail}."
            ),
            evidence={
                "month_to_date": spent,
                "projected": projected,
                "monthly_budget": budget,
                "cost_per_hour": cost_tile.value,
                "hours_left": hours_left,
            },
        ),
    )


# Release rules ---------------------------------------------------------------------------------


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.1f} h" if hours >= 1 else f"{span.total_seconds() / 60:.0f} min"


def _release_name(deployment: Deployment, release: Release) -> str:
    return (
        f"Release #{release.pk} of {deployment.model.name} v{release.version.number} "
        f"in {deployment.environment.name}"
    )


def _automatic_rollback(deployment: Deployment, release: Release) -> Any:
    history = getattr(deployment, "rollback_history", None)
    if history is None:
        history = list(deployment.rollbacks.all())
    return next((rb for rb in history if rb.release_id == release.pk and rb.automatic), None)


def _judge_release_failed(judgement: Judgement, deployment: Deployment, now: datetime) -> None:
    """release_failed: the latest release ended failed, or rolled back by an automatic rollback,
    within the lookback, and no newer release started since (a newer one is the latest)."""
    key = fingerprint(Rule.RELEASE_FAILED, deployment.pk)
    latest_list = getattr(deployment, "latest_releases", None)
    if latest_list is None:
        latest_list = list(deployment.releases.select_related("version")[:1])
    release = latest_list[0] if latest_list else None
    rollback = None
    if release is not None and release.state == ReleaseState.ROLLED_BACK:
        rollback = _automatic_rollback(deployment, release)
    failed = release is not None and (release.state == ReleaseState.FAILED or rollback is not None)
    if not failed:
        judgement.judged(key, None, "the latest release did not fail")
        return
    ended = release.finished_at or release.updated_at
    if now - ended > release_failed_lookback():
        judgement.judged(key, None, f"it ended more than {_hours(release_failed_lookback())} ago")
        return
    verb = "failed" if rollback is None else "was rolled back automatically"
    reason = release.status_reason or (rollback.reason if rollback else "") or "no reason recorded"
    judgement.judged(
        key,
        _signal(
            deployment,
            Rule.RELEASE_FAILED,
            key,
            title=f"{_release_name(deployment, release)} {verb}",
            severity=Severity.CRITICAL,
            summary=f"{_release_name(deployment, release)} {verb}: {reason}",
            release=release,
            evidence={
                "release": release.pk,
                "state": release.state,
                "version": release.version.number,
                "finished_at": ended.isoformat(),
                "reason": reason,
                "rollback": rollback.pk if rollback else None,
            },
        ),
    )


def _waiting_since(release: Release) -> datetime:
    """When the release started waiting in its current state: the last transition into it, or
    its creation for one that has awaited approval since it was made."""
    steps = getattr(release, "waiting_steps", None)
    if steps is None:
        steps = list(
            release.steps.filter(to_state__in=WAITING_FOR_A_PERSON)
            .exclude(from_state=F("to_state"))
            .order_by("id")
        )
    into = [step for step in steps if step.to_state == release.state]
    if into:
        return into[-1].created_at
    return (
        release.created_at
        if release.state == ReleaseState.AWAITING_APPROVAL
        else release.updated_at
    )


def _last_pause(release: Release) -> ReleaseStep | None:
    steps = getattr(release, "waiting_steps", None)
    if steps is None:
        steps = list(release.steps.filter(to_state=ReleaseState.PAUSED).order_by("id"))
    pauses = [step for step in steps if step.to_state == ReleaseState.PAUSED]
    return pauses[-1] if pauses else None


def _judge_active_release(judgement: Judgement, deployment: Deployment, now: datetime) -> None:
    """release_inconclusive: the active release is paused because its analysis could not
    decide; release_waiting: it has waited for a person longer than the setting allows."""
    inconclusive_key = fingerprint(Rule.RELEASE_INCONCLUSIVE, deployment.pk)
    waiting_key = fingerprint(Rule.RELEASE_WAITING, deployment.pk)
    release = deployment_selectors.active_release(deployment)
    if release is None or release.state not in WAITING_FOR_A_PERSON:
        state = release.get_state_display().lower() if release else "no release is active"
        judgement.judged(inconclusive_key, None, f"no release waits: {state}")
        judgement.judged(waiting_key, None, f"no release waits: {state}")
        return
    name = _release_name(deployment, release)
    pause = _last_pause(release) if release.state == ReleaseState.PAUSED else None
    if pause is not None and pause.outcome == INCONCLUSIVE:
        judgement.judged(
            inconclusive_key,
            _signal(
                deployment,
                Rule.RELEASE_INCONCLUSIVE,
                inconclusive_key,
                title=f"{name} is paused: its analysis was inconclusive",
                severity=Severity.WARNING,
                summary=(
                    f"{release.status_reason or pause.reason}. A person decides: resume, "
                    "promote or roll back."
                ),
                release=release,
                evidence={
                    "release": release.pk,
                    "paused_at": pause.created_at.isoformat(),
                    "reason": release.status_reason or pause.reason,
                },
            ),
        )
    else:
        judgement.judged(inconclusive_key, None, "the release is not paused as inconclusive")
    since = _waiting_since(release)
    waited = now - since
    limit = release_wait_limit()
    if waited <= limit:
        judgement.judged(waiting_key, None, "the release no longer waits past the limit")
        return
    state = release.get_state_display().lower()
    judgement.judged(
        waiting_key,
        _signal(
            deployment,
            Rule.RELEASE_WAITING,
            waiting_key,
            title=f"{name} has waited {_hours(waited)} for a person ({state})",
            severity=Severity.WARNING,
            summary=(
                f"{name} is {state} since {since:%Y-%m-%d %H:%M %Z}, longer than the "
                f"{_hours(limit)} a release may wait for a person."
            ),
            release=release,
            evidence={
                "release": release.pk,
                "state": release.state,
                "waiting_since": since.isoformat(),
                "waited_seconds": waited.total_seconds(),
                "limit_seconds": limit.total_seconds(),
            },
        ),
    )
