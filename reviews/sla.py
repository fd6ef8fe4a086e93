"""Review SLAs: when an item is due (`deadline`, in business hours when the policy sets them),
how long is left (`time_left`), and the beat-run `check` that marks items past their deadline
and raises one alert per deployment that has any, through alerts.lifecycle, so the breach is
owned, escalated and resolved like every other alert.

Business hours are counted in the policy's local wall time (zoneinfo), so a daylight-saving
change moves the opening hour with the clocks and a working day keeps its real length (a
window that spans the change is an hour shorter or longer in elapsed time). The alert never
names an item's input summary, and `check` never resolves an alert while breached items remain."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Min, Q

from alerts import lifecycle
from alerts import rules as alert_rules
from alerts.models import OPEN_ALERT_STATES, Alert, AlertSource, Severity
from core import clock
from deployments.models import Deployment
from deployments.review_policy import BusinessHours, ReviewPolicy
from identity.audit import Actor

from . import history
from .models import OPEN_REVIEW_STATES, ReviewEventKind, ReviewItem

log = logging.getLogger(__name__)

ACTOR = Actor.system("review-sla")
RULE = "review_sla"
# Far more than any valid policy needs (30 days of SLA at one business minute a week): a
# guard against looping for ever, never a limit a real policy meets.
MAX_DAYS_SEARCHED = 366 * 40


def breach_batch_size() -> int:
    """How many newly breached items one transaction marks (REVIEWS_SLA_BATCH)."""
    return int(getattr(settings, "REVIEWS_SLA_BATCH", 500))


# Deadlines -------------------------------------------------------------------------------------


def _window(day: date, hours: BusinessHours, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """That local day's opening and closing instants, in UTC."""
    opens = datetime.combine(day, hours.start, tzinfo=tz).astimezone(UTC)
    closes = datetime.combine(day, hours.end, tzinfo=tz).astimezone(UTC)
    return opens, closes


def deadline(start: datetime, policy: ReviewPolicy) -> datetime:
    """When an item that arrives at `start` is due: `sla_minutes` later, counting only the
    minutes inside business hours when the policy sets them (an item that arrives on Friday
    evening is due on Monday). The arithmetic is done on UTC instants between local opening
    and closing times, never by adding hours to a local time."""
    remaining = timedelta(minutes=policy.sla_minutes)
    hours = policy.business_hours
    if hours is None:
        return start + remaining
    tz = ZoneInfo(hours.timezone)
    start = start.astimezone(UTC)
    day = start.astimezone(tz).date()
    for _ in range(MAX_DAYS_SEARCHED):
        if day.weekday() in hours.days:
            opens, closes = _window(day, hours, tz)
            begin = max(opens, start)
            if begin < closes:
                if remaining <= closes - begin:
                    return begin + remaining
                remaining -= closes - begin
        day += timedelta(days=1)
    raise ValueError(f"no business hours found for the policy's SLA ({hours})")


def time_left(item: ReviewItem, now: datetime | None = None) -> timedelta | None:
    """Time until the item's deadline (negative once past it); None for a decided item, whose
    SLA no longer runs."""
    if not item.is_open:
        return None
    return item.sla_deadline - (now or clock.now())


# The check -------------------------------------------------------------------------------------


def fingerprint(deployment_id: int) -> str:
    """The identity of a deployment's SLA alert, in the form of the control plane's rules."""
    return alert_rules.fingerprint(RULE, deployment_id)


@dataclass(frozen=True)
class Breach:
    """A deployment's open items past their deadline."""

    deployment_id: int
    breached: int
    oldest_deadline: datetime


def _mark_breached(now: datetime) -> int:
    """Stamp every open item whose deadline has passed and is not yet stamped for it (an
    appeal's new deadline counts afresh), with an SLA_BREACHED event; bounded transactions,
    rows being decided this instant are left to the next run."""
    skip_locked = connection.features.has_select_for_update_skip_locked
    due = ReviewItem.objects.filter(status__in=OPEN_REVIEW_STATES, sla_deadline__lte=now).filter(
        Q(sla_breached_at__isnull=True) | Q(sla_breached_at__lt=F("sla_deadline"))
    )
    marked = 0
    while True:
        with transaction.atomic():
            batch = list(
                due.select_for_update(skip_locked=skip_locked, of=("self",)).order_by(
                    "sla_deadline", "id"
                )[: breach_batch_size()]
            )
            for item in batch:
                # The breach happened at the deadline, whenever this run noticed it.
                item.sla_breached_at = item.sla_deadline
                item.save(update_fields=["sla_breached_at", "updated_at"])
                history.event(
                    item,
                    ReviewEventKind.SLA_BREACHED,
                    ACTOR,
                    {"deadline": item.sla_deadline.isoformat(), "noticed_at": now.isoformat()},
                )
        marked += len(batch)
        if len(batch) < breach_batch_size():
            return marked


def breaches(now: datetime) -> dict[int, Breach]:
    """Open items past their deadline, per deployment, in one query."""
    rows = (
        ReviewItem.objects.filter(status__in=OPEN_REVIEW_STATES, sla_deadline__lte=now)
        .values("deployment_id")
        .annotate(breached=Count("id"), oldest=Min("sla_deadline"))
        .order_by("deployment_id")
    )
    return {
        row["deployment_id"]: Breach(row["deployment_id"], row["breached"], row["oldest"])
        for row in rows
    }


def _signal(deployment: Deployment, breach: Breach, now: datetime) -> lifecycle.Signal:
    name = f"{deployment.model.name} in {deployment.environment.name}"
    items = "review item is" if breach.breached == 1 else "review items are"
    late = now - breach.oldest_deadline
    return lifecycle.Signal(
        team=deployment.model.team,
        source=AlertSource.RULE,
        fingerprint=fingerprint(deployment.pk),
        rule=RULE,
        title=f"{breach.breached} {items} past their SLA on {name}",
        severity=Severity.WARNING,
        summary=(
            f"{breach.breached} open review item(s) of {name} passed their deadline; the "
            f"oldest was due {breach.oldest_deadline:%Y-%m-%d %H:%M %Z}, "
            f"{int(late.total_seconds() // 60)} min ago. Claim and decide them from the "
            "review queue."
        ),
        model=deployment.model,
        deployment=deployment,
        labels={
            "model": deployment.model.name,
            "environment": deployment.environment.name,
            "deployment": deployment.name,
            "rule": RULE,
        },
        evidence={
            "breached": breach.breached,
            "oldest_deadline": breach.oldest_deadline.isoformat(),
        },
    )


def check(now: datetime | None = None) -> int:
    """Mark newly breached items, then fire (or refresh) one alert per deployment with open
    items past their deadline and resolve the alerts of deployments that have none left. One
    transaction per deployment: a failure is logged and the others go on. Returns how many
    items were newly marked as breached."""
    now = now or clock.now()
    marked = _mark_breached(now)
    found = breaches(now)
    deployments = Deployment.objects.select_related("model__team", "environment").in_bulk(
        list(found)
    )
    for deployment_id, breach in found.items():
        deployment = deployments.get(deployment_id)
        if deployment is None:
            continue  # deleted since the count: its items went with it
        try:
            with transaction.atomic():
                lifecycle.fire(_signal(deployment, breach, now), actor=ACTOR)
        except Exception:  # one deployment's alert must not stop the others: log, go on
            log.exception("review SLA alert failed for deployment %s", deployment_id)
    stale = (
        Alert.objects.filter(source=AlertSource.RULE, rule=RULE, status__in=OPEN_ALERT_STATES)
        .exclude(deployment_id__in=list(found))
        .select_related("team")
        .order_by("id")
    )
    for alert in stale:
        try:
            with transaction.atomic():
                lifecycle.clear(
                    team=alert.team,
                    source=AlertSource.RULE,
                    fingerprint=alert.fingerprint,
                    actor=ACTOR,
                    reason="no open review item is past its SLA any more",
                )
        except Exception:  # as above: the next run tries again
            log.exception("clearing review SLA alert %s failed", alert.pk)
    return marked
