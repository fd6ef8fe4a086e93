"""Thin Celery tasks of the alerts app, enqueued and scheduled by name (settings'
CELERY_BEAT_SCHEDULE): rule evaluation, escalation, and notification delivery."""

from __future__ import annotations

from celery import shared_task

from alerts import escalation, rules


@shared_task(name="alerts.evaluate_rules", ignore_result=True)
def evaluate_rules() -> int:
    """Evaluate the control plane's own rules on every deployment; returns open alerts."""
    return rules.evaluate_all()


@shared_task(name="alerts.escalate", ignore_result=True)
def escalate() -> int:
    """Move every unacknowledged alert whose wait is over up its policy."""
    return escalation.escalate_due()
