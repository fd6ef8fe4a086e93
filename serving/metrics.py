"""The metrics contract of the inference service (see docs/metrics.md), exported with
prometheus_client.

The control plane computes error rates, latency, cost, drift and canary verdicts from these names
and labels: keep them stable. Only aggregates leave the service (counts per bucket and category),
never a raw value. Works in one process or, when PROMETHEUS_MULTIPROC_DIR is set before
prometheus_client is imported, across uvicorn worker processes (mmap files merged at scrape time).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

OTHER_CATEGORY = "__other__"
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Below this many rows a plain bisect loop beats numpy's per-call overhead.
_NUMPY_MIN_ROWS = 32


def multiprocess_enabled() -> bool:
    """True when prometheus_client chose mmap-backed values (PROMETHEUS_MULTIPROC_DIR at import)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


class BucketHistogram:
    """A histogram whose `le` bounds are given per label set (here: per feature), which
    prometheus_client's Histogram cannot do. Cells are prometheus_client value objects, so in
    multiprocess mode they live in the same mmap files that MultiProcessCollector merges."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Mapping[str, str],
        edges: Sequence[float],
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = dict(labels)
        # Baseline bins are (e_i, e_i+1]; the exported buckets are the inner edges plus +Inf.
        self.bounds = [float(e) for e in edges[1:-1]]
        self._bounds_array = np.asarray(self.bounds, dtype=float)
        names = [*self.labels, "le"]
        label_values = list(self.labels.values())
        bucket_name = name + "_bucket"
        self._cells = [
            values.ValueClass(
                "histogram",
                name,
                bucket_name,
                names,
                [*label_values, floatToGoString(bound)],
                documentation,
            )
            for bound in [*self.bounds, float("inf")]
        ]
        self._sum = values.ValueClass(
            "histogram", name, name + "_sum", list(self.labels), label_values, documentation
        )

    def observe_many(self, observations: Sequence[float]) -> None:
        if len(observations) >= _NUMPY_MIN_ROWS:
            arr = np.asarray(observations, dtype=float)
            counts = np.bincount(
                np.searchsorted(self._bounds_array, arr, side="left"),
                minlength=len(self._cells),
            )
            for cell, count in zip(self._cells, counts.tolist(), strict=True):
                if count:
                    cell.inc(count)
            self._sum.inc(float(arr.sum()))
            return
        bounds = self.bounds
        cells = self._cells
        for value in observations:
            cells[bisect_left(bounds, value)].inc(1)
        self._sum.inc(float(sum(observations)))

    def bucket_counts(self) -> list[float]:
        """Non-cumulative counts per bucket (test and single-process exposition helper)."""
        return [cell.get() for cell in self._cells]

    def family(self) -> HistogramMetricFamily:
        acc = 0.0
        buckets = []
        for bound, cell in zip([*self.bounds, float("inf")], self._cells, strict=True):
            acc += cell.get()
            buckets.append((floatToGoString(bound), acc))
        family = HistogramMetricFamily(self.name, self.documentation, labels=list(self.labels))
        family.add_metric(list(self.labels.values()), buckets, self._sum.get())
        return family


class _BucketHistogramCollector:
    """Single-process exposition of BucketHistograms (multiprocess mode reads their mmap files)."""

    def __init__(self, histograms: Iterable[BucketHistogram]) -> None:
        self._histograms = list(histograms)

    def collect(self) -> Iterable[Metric]:
        by_name: dict[str, HistogramMetricFamily] = {}
        for hist in self._histograms:
            family = hist.family()
            if hist.name in by_name:
                by_name[hist.name].samples.extend(family.samples)
            else:
                by_name[hist.name] = family
        return list(by_name.values())


class ServingMetrics:
    """All metrics of one served model version, with label values bound once."""

    def __init__(
        self,
        *,
        model: str,
        version: str,
        digest: str,
        track: str,
        format: str,
        manifest: Mapping[str, Any],
    ) -> None:
        self.model = model
        self.version = version
        self.multiprocess = multiprocess_enabled()
        self.registry = CollectorRegistry(auto_describe=True)
        # In multiprocess mode the values go to mmap files and scrapes read them from there.
        registry = None if self.multiprocess else self.registry
        base = {"model": model, "version": version}
        mv = (model, version)
        self._lock = threading.Lock()

        self.requests = Counter(
            "model_requests_total",
            "HTTP requests to predict/infer endpoints, by endpoint and status code",
            ["model", "version", "endpoint", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "model_request_duration_seconds",
            "Time to answer a predict/infer request",
            ["model", "version", "endpoint"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.predictions = Counter(
            "model_predictions_total",
            "Rows predicted",
            ["model", "version"],
            registry=registry,
        ).labels(*mv)
        self.rejections = Counter(
            "model_input_rejections_total",
            "Requests rejected before prediction, by reason",
            ["model", "version", "reason"],
            registry=registry,
        )
        info = Gauge(
            "model_info",
            "The model version this process serves (always 1)",
            ["model", "version", "digest", "track", "format"],
            registry=registry,
            multiprocess_mode="max",
        )
        info.labels(model, version, digest, track, format).set(1)
        self.predictions.inc(0)

        profile = manifest.get("baseline_profile") or {}
        schema_props = (manifest.get("input_schema") or {}).get("properties", {})
        self._numeric: dict[str, BucketHistogram] = {}
        self._categories: dict[str, frozenset[str]] = {}
        categories = Counter(
            "model_feature_category_total",
            "Values seen per category of each categorical feature (unknown: __other__)",
            ["model", "version", "feature", "category"],
            registry=registry,
        )
        self._category_counter = categories
        histograms: list[BucketHistogram] = []
        for feature, fprofile in (profile.get("features") or {}).items():
            if fprofile.get("type") == "numeric":
                hist = BucketHistogram(
                    "model_feature_value",
                    "Live distribution of each numeric feature on its baseline bin edges",
                    {**base, "feature": feature},
                    fprofile["bin_edges"],
                )
                self._numeric[feature] = hist
                histograms.append(hist)
            else:
                enum = schema_props.get(feature, {}).get("enum")
                known = [*(enum or []), *fprofile.get("frequencies", {})]
                self._categories[feature] = frozenset(known)
                for cat in dict.fromkeys([*known, OTHER_CATEGORY]):
                    categories.labels(model, version, feature, cat).inc(0)

        self._classes: frozenset[str] | None = None
        self._prediction_hist: BucketHistogram | None = None
        prediction = profile.get("prediction") or {}
        if manifest.get("task") == "classification":
            self._class_counter = Counter(
                "model_prediction_class_total",
                "Predictions per class",
                ["model", "version", "class"],
                registry=registry,
            )
            self._classes = frozenset(str(c) for c in manifest.get("classes", []))
            for cls in self._classes:
                self._class_counter.labels(model, version, cls).inc(0)
        elif prediction.get("type") == "numeric":
            self._prediction_hist = BucketHistogram(
                "model_prediction_value",
                "Live distribution of predicted values on the baseline bin edges",
                base,
                prediction["bin_edges"],
            )
            histograms.append(self._prediction_hist)
        self.histograms = histograms
        if not self.multiprocess:
            self.registry.register(_BucketHistogramCollector(histograms))

        self._request_children: dict[tuple[str, str], Any] = {}
        self._duration_children: dict[str, Any] = {}
        self._rejection_children: dict[str, Any] = {}
        self._category_children: dict[tuple[str, str], Any] = {}

    # ---- hot path

    def observe_request(self, endpoint: str, code: int, seconds: float) -> None:
        key = (endpoint, str(code))
        child = self._request_children.get(key)
        if child is None:
            child = self.requests.labels(self.model, self.version, endpoint, key[1])
            self._request_children[key] = child
        child.inc()
        hist = self._duration_children.get(endpoint)
        if hist is None:
            hist = self.duration.labels(self.model, self.version, endpoint)
            self._duration_children[endpoint] = hist
        hist.observe(seconds)

    def observe_rejection(self, reason: str) -> None:
        child = self._rejection_children.get(reason)
        if child is None:
            child = self.rejections.labels(self.model, self.version, reason)
            self._rejection_children[reason] = child
        child.inc()

    def observe_batch(self, columns: Mapping[str, Sequence[Any]], labels: Sequence[Any]) -> None:
        """Record one predicted batch: rows, feature distributions and predictions."""
        rows = len(labels)
        # The lock keeps multi-cell updates of one request together when handlers run in threads.
        with self._lock:
            self.predictions.inc(rows)
            for feature, hist in self._numeric.items():
                column = columns.get(feature)
                if column is not None:
                    hist.observe_many(column)
            for feature, known in self._categories.items():
                column = columns.get(feature)
                if column is None:
                    continue
                for category, count in Tally(column).items():
                    label = category if category in known else OTHER_CATEGORY
                    self._category_child(feature, label).inc(count)
            if self._classes is not None:
                for cls, count in Tally(str(label) for label in labels).items():
                    label = cls if cls in self._classes else OTHER_CATEGORY
                    self._class_counter.labels(self.model, self.version, label).inc(count)
            elif self._prediction_hist is not None:
                self._prediction_hist.observe_many(labels)

    def _category_child(self, feature: str, category: str) -> Any:
        key = (feature, category)
        child = self._category_children.get(key)
        if child is None:
            child = self._category_counter.labels(self.model, self.version, feature, category)
            self._category_children[key] = child
        return child

    def feature_histogram(self, feature: str) -> BucketHistogram:
        return self._numeric[feature]

    def review_metrics(self) -> ReviewMetrics:
        """The human review metrics of this model version, in the same registry (or the same
        multiprocess files) so one scrape of /metrics shows them."""
        return ReviewMetrics(
            model=self.model,
            version=self.version,
            registry=None if self.multiprocess else self.registry,
        )

    # ---- exposition

    def render(self) -> tuple[bytes, str]:
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


REVIEW_SELECTION_REASONS = ("high_risk", "low_confidence", "class_listed", "sampled")
OUTBOX_DROP_REASONS = ("full", "rejected", "error")


class ReviewMetrics:
    """Human review in the serving process: how many predictions the policy selected (by mode and
    reason) and what the outbox did with them. Counters add up: every queued item is eventually
    sent, rejected (dropped, reason="rejected") or still in the outbox (the depth gauge); items
    refused at the door are dropped with reason="full" (or "error" when the disk failed) and were
    never queued. Implements serving.outbox.OutboxObserver."""

    def __init__(self, *, model: str, version: str, registry: CollectorRegistry | None) -> None:
        mv = (model, version)
        self._model = model
        self._version = version
        self._selected = Counter(
            "modelplane_review_predictions_total",
            "Predictions the review policy selected, by mode (held/audited) and reason",
            ["model", "version", "mode", "reason"],
            registry=registry,
        )
        self._queued = Counter(
            "modelplane_review_outbox_queued_total",
            "Review items written to the outbox",
            ["model", "version"],
            registry=registry,
        ).labels(*mv)
        self._sent = Counter(
            "modelplane_review_outbox_sent_total",
            "Review items the control plane accepted (2xx)",
            ["model", "version"],
            registry=registry,
        ).labels(*mv)
        self._retried = Counter(
            "modelplane_review_outbox_retried_total",
            "Submissions that failed in a way worth retrying (connection error, timeout, 5xx, "
            "408, 429, 401, 403) and will be tried again",
            ["model", "version"],
            registry=registry,
        ).labels(*mv)
        dropped = Counter(
            "modelplane_review_outbox_dropped_total",
            "Review items given up: full (outbox at its bound, never queued), rejected "
            "(a permanent 4xx from the control plane), error (the outbox file failed)",
            ["model", "version", "reason"],
            registry=registry,
        )
        self._dropped = {reason: dropped.labels(*mv, reason) for reason in OUTBOX_DROP_REASONS}
        self._depth = Gauge(
            "modelplane_review_outbox_depth",
            "Review items waiting in the outbox to be sent",
            ["model", "version"],
            registry=registry,
            multiprocess_mode="livesum",
        ).labels(*mv)
        self._selected_children: dict[tuple[str, str], Any] = {}
        for mode in ("held", "audited"):
            for reason in REVIEW_SELECTION_REASONS:
                self._selected_child(mode, reason).inc(0)
        for child in (self._queued, self._sent, self._retried, *self._dropped.values()):
            child.inc(0)
        self._depth.set(0)

    def _selected_child(self, mode: str, reason: str) -> Any:
        key = (mode, reason)
        child = self._selected_children.get(key)
        if child is None:
            child = self._selected.labels(self._model, self._version, mode, reason)
            self._selected_children[key] = child
        return child

    def selected(self, mode: str, reason: str, count: int = 1) -> None:
        self._selected_child(mode, reason).inc(count)

    # ---- serving.outbox.OutboxObserver

    def queued(self, count: int) -> None:
        self._queued.inc(count)

    def sent(self) -> None:
        self._sent.inc()

    def retried(self) -> None:
        self._retried.inc()

    def dropped(self, reason: str, count: int = 1) -> None:
        self._dropped[reason].inc(count)

    def depth(self, value: int) -> None:
        self._depth.set(value)
