"""Human review outcomes at the control plane's `/metrics`: per deployment and model version the
items submitted, decided at level 1, overridden and appealed (counters: rows are never deleted,
retention only empties the input summary), and per deployment the open items and the open items
past their SLA deadline (gauges).

A collector added to monitoring's exporter through settings.METRICS_EXTRA_COLLECTORS (monitoring
never imports reviews). One query at each scrape, whatever the number of items, versions or
deployments; it never writes, and a deployment or version without any item has no series at all
(absent, not 0: nothing is known about it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import Count, Q
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from core import clock

from .models import ReviewItem
from .outcomes import OPEN, outcome_counts

VERSION_LABELS = ["deployment", "environment", "model", "version"]
DEPLOYMENT_LABELS = ["deployment", "environment"]


class ReviewCollector(Collector):
    """Reads the review items at every scrape: one grouped query."""

    def collect(self) -> Iterator[Any]:
        now = clock.now()
        counters = {
            "submitted": CounterMetricFamily(
                "modelplane_review_items",
                "Predictions submitted for human review.",
                labels=VERSION_LABELS,
            ),
            "decided": CounterMetricFamily(
                "modelplane_review_decided",
                "Review items with a first-level decision (an appealed item keeps it).",
                labels=VERSION_LABELS,
            ),
            "overridden": CounterMetricFamily(
                "modelplane_review_overridden",
                "First-level decisions that overrode the model's prediction.",
                labels=VERSION_LABELS,
            ),
            "appealed": CounterMetricFamily(
                "modelplane_review_appealed",
                "Decided review items that were appealed to a second reviewer.",
                labels=VERSION_LABELS,
            ),
        }
        open_items = GaugeMetricFamily(
            "modelplane_review_open_items",
            "Review items waiting for a decision (pending or claimed), either level.",
            labels=DEPLOYMENT_LABELS,
        )
        breached = GaugeMetricFamily(
            "modelplane_review_sla_breached_open_items",
            "Open review items past their SLA deadline.",
            labels=DEPLOYMENT_LABELS,
        )
        rows = (
            ReviewItem.objects.order_by()
            .values(
                "deployment_id",
                "deployment__name",
                "deployment__environment__name",
                "deployment__model__name",
                "model_version__number",
            )
            .annotate(
                **outcome_counts(),
                open=Count("pk", filter=OPEN),
                # Past the deadline now, whether or not the scheduled SLA check has marked it
                # yet: a scrape should not lag behind the beat.
                breached=Count("pk", filter=OPEN & Q(sla_deadline__lte=now)),
            )
            .order_by("deployment_id", "model_version__number")
        )
        per_deployment: dict[tuple[str, str], list[int]] = {}
        for row in rows:
            place = (row["deployment__name"], row["deployment__environment__name"])
            labels = [*place, row["deployment__model__name"], str(row["model_version__number"])]
            for name, family in counters.items():
                family.add_metric(labels, row[name])
            totals = per_deployment.setdefault(place, [0, 0])
            totals[0] += row["open"]
            totals[1] += row["breached"]
        for place, (waiting, late) in per_deployment.items():
            open_items.add_metric(list(place), waiting)
            breached.add_metric(list(place), late)
        yield from counters.values()
        yield open_items
        yield breached
