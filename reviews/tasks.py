"""Thin Celery tasks of the reviews app, enqueued and scheduled by name."""

from __future__ import annotations

from celery import shared_task

from reviews import callbacks, claims, retention, sla


@shared_task(name="reviews.check_sla", ignore_result=True)
def check_sla() -> int:
    """Mark open items past their SLA deadline and fire or clear each deployment's alert;
    returns how many items newly breached."""
    return sla.check()


@shared_task(name="reviews.expire_claims", ignore_result=True)
def expire_claims() -> int:
    """Hand claims whose lease ran out back to the queue; returns how many."""
    return claims.expire_claims()


@shared_task(name="reviews.purge_summaries", ignore_result=True)
def purge_summaries() -> int:
    """Delete the input summaries of decided items past the retention; returns how many."""
    return retention.purge_summaries()


@shared_task(
    name=callbacks.DELIVER_TASK,
    bind=True,
    ignore_result=True,
    acks_late=True,
    max_retries=None,
)
def deliver_callback(self, delivery_id: int) -> None:  # type: ignore[no-untyped-def]
    """POST one decided outcome, signed, to the deployment's callback URL; a transient failure
    retries with exponential backoff. The delivery row counts the attempts and fails the
    delivery after REVIEWS_CALLBACK_MAX_ATTEMPTS, so Celery's own retry limit is off (None)."""
    try:
        callbacks.deliver(delivery_id)
    except callbacks.RetryLater as exc:
        raise self.retry(exc=exc, countdown=exc.countdown) from None


@shared_task(name="reviews.requeue_callbacks", ignore_result=True)
def requeue_callbacks() -> int:
    """Enqueue again the outcome deliveries whose message was lost (broker down at commit, a
    worker gone); returns how many."""
    return callbacks.requeue_stale()
