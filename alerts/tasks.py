"""Thin Celery tasks of the alerts app, enqueued and scheduled by name (settings'
CELERY_BEAT_SCHEDULE): rule evaluation, escalation, and notification delivery."""

from __future__ import annotations

from celery import shared_task

from alerts import escalation, notify, rules


@shared_task(name="alerts.evaluate_rules", ignore_result=True)
def evaluate_rules() -> int:
    """Evaluate the control plane's own rules on every deployment; returns the conditions that
    hold."""
    return rules.evaluate_all()


@shared_task(name="alerts.escalate", ignore_result=True)
def escalate() -> int:
    """Move every unacknowledged alert whose wait is over up its policy, and enqueue again the
    deliveries whose message was lost."""
    moved = escalation.escalate_due()
    notify.requeue_stale()
    return moved


@shared_task(
    name=notify.DELIVER_TASK,
    bind=True,
    ignore_result=True,
    acks_late=True,
    max_retries=notify.MAX_ATTEMPTS - 1,
)
def deliver(self, delivery_id: int) -> None:  # type: ignore[no-untyped-def]
    """Send one notification; a transient failure retries with exponential backoff (the
    delivery row counts the attempts and marks it failed after the last)."""
    try:
        notify.deliver(delivery_id)
    except notify.RetryLater as exc:
        raise self.retry(exc=exc, countdown=exc.countdown) from None
