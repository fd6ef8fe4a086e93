"""Retention of review items' personal data: once a decided item is older than
REVIEWS_RETENTION_DAYS, its input summary and the model's explanation are deleted (the decision,
its reason and the history stay, so outcomes still count and an audit can still follow who
decided what). Run by Celery beat in bounded transactions. It must never touch an open item (a
reviewer still needs what it shows) and never copy what it deletes anywhere."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from core import clock
from identity.audit import Actor

from . import history
from .models import ReviewEventKind, ReviewItem, ReviewStatus

ACTOR = Actor.system("review-retention")


def retention_days() -> float:
    """How long a decided item keeps its input summary, in days from the item's arrival
    (REVIEWS_RETENTION_DAYS)."""
    return float(getattr(settings, "REVIEWS_RETENTION_DAYS", 90))


def batch_size() -> int:
    """How many items one transaction purges (REVIEWS_PURGE_BATCH)."""
    return int(getattr(settings, "REVIEWS_PURGE_BATCH", 500))


def purge_summaries(now: datetime | None = None) -> int:
    """Delete the input summary and explanation of every decided item that arrived more than
    the retention ago and still has them; a SUMMARY_PURGED event says when. Rows locked by a
    reviewer (an appeal being claimed) are skipped and caught by the next run. Returns how
    many items were purged."""
    now = now or clock.now()
    due = ReviewItem.objects.filter(
        status=ReviewStatus.DECIDED,
        created_at__lt=now - timedelta(days=retention_days()),
        summary_purged_at__isnull=True,
    )
    skip_locked = connection.features.has_select_for_update_skip_locked
    purged = 0
    while True:
        with transaction.atomic():
            batch = list(
                due.select_for_update(skip_locked=skip_locked, of=("self",))
                .only("id", "level", "input_summary", "explanation", "summary_purged_at")
                .order_by("created_at", "id")[: batch_size()]
            )
            for item in batch:
                item.input_summary = None
                item.explanation = None
                item.summary_purged_at = now
                item.save(
                    update_fields=[
                        "input_summary",
                        "explanation",
                        "summary_purged_at",
                        "updated_at",
                    ]
                )
                history.event(
                    item,
                    ReviewEventKind.SUMMARY_PURGED,
                    ACTOR,
                    {"retention_days": retention_days()},
                )
        purged += len(batch)
        if len(batch) < batch_size():
            return purged
