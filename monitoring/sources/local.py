"""`LocalScrapeSource`: the demo `MetricsSource` for a host with no Prometheus. It scrapes each
model version's `/metrics` itself, keeps the samples in `MetricScrape` rows for a retention
period, and answers queries with Prometheus's semantics (counter resets, `histogram_quantile`).

It reads our serving metrics contract only (`model_*` names). A query costs one SQL statement
whatever the number of versions or scrapes; a version with fewer than two scrapes in the window
is `NoData`, never zero.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from monitoring.models import MetricScrape
from monitoring.sources.base import (
    FeatureCounts,
    IntervalSample,
    MetricsUnavailable,
    NoData,
    NumericFeatureCounts,
    Series,
    SingleKeyMethods,
    VersionKey,
    WindowStats,
    check_series_name,
    finite_or_none,
    resolve_window,
    unique_keys,
)
from monitoring.sources.semantics import decumulate, histogram_quantile

DEFAULT_RETENTION_SECONDS = 6 * 3600
REQUESTS = "model_requests_total"
REJECTIONS = "model_input_rejections_total"
PREDICTIONS = "model_predictions_total"
LATENCY_BUCKETS = "model_request_duration_seconds_bucket"
FEATURE_BUCKETS = "model_feature_value_bucket"
FEATURE_CATEGORIES = "model_feature_category_total"
PREDICTION_CLASSES = "model_prediction_class_total"

LabelSet = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ScrapeTarget:
    """Where one model version's metrics are exposed: the full URL of its `/metrics`."""

    model: str
    version: int
    url: str

    @property
    def key(self) -> VersionKey:
        return VersionKey(self.model, self.version)


@dataclass(frozen=True)
class ScrapeOutcome:
    target: ScrapeTarget
    ok: bool
    series: int = 0
    error: str | None = None


class LocalScrapeSource(SingleKeyMethods):
    def __init__(
        self,
        *,
        timeout_seconds: float = 2.0,
        retention_seconds: float | None = None,
        metric_prefixes: tuple[str, ...] = ("model_",),
        min_step_seconds: float = 1.0,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.retention_seconds = float(
            retention_seconds
            if retention_seconds is not None
            else getattr(
                settings, "MONITORING_LOCAL_SCRAPE_RETENTION_SECONDS", DEFAULT_RETENTION_SECONDS
            )
        )
        self.metric_prefixes = metric_prefixes
        self.min_step_seconds = min_step_seconds

    # -- scraping ------------------------------------------------------------------------------

    def scrape(self, targets: Sequence[ScrapeTarget]) -> list[ScrapeOutcome]:
        """Fetch every target (in parallel, short timeout), store the successful scrapes in one
        INSERT and prune rows past retention. A failed scrape stores nothing: a gap in the data
        is what makes the window "no data" rather than a fabricated zero."""
        if not targets:
            return []
        with (
            httpx.Client(timeout=self.timeout_seconds) as client,
            ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool,
        ):
            fetched = list(pool.map(lambda target: self._fetch(client, target), targets))
        rows = []
        outcomes = []
        for target, (scraped_at, samples, error) in zip(targets, fetched, strict=True):
            if error is not None:
                outcomes.append(ScrapeOutcome(target=target, ok=False, error=error))
                continue
            rows.append(
                MetricScrape(
                    model_name=target.model,
                    version=target.version,
                    scraped_at=scraped_at,
                    target_url=target.url,
                    samples=samples,
                )
            )
            series = sum(len(values) for values in samples.values())
            outcomes.append(ScrapeOutcome(target=target, ok=True, series=series))
        MetricScrape.objects.bulk_create(rows)
        self.prune()
        return outcomes

    def ingest(self, target: ScrapeTarget, text: str, scraped_at: datetime) -> MetricScrape:
        """Store one exposition text fetched by someone else (a push, a replayed capture)."""
        return MetricScrape.objects.create(
            model_name=target.model,
            version=target.version,
            scraped_at=scraped_at,
            target_url=target.url,
            samples=self._parse(text, target),
        )

    def prune(self, now: datetime | None = None) -> int:
        cutoff = (now or timezone.now()) - timedelta(seconds=self.retention_seconds)
        deleted, _ = MetricScrape.objects.filter(scraped_at__lt=cutoff).delete()
        return deleted

    def _fetch(
        self, client: httpx.Client, target: ScrapeTarget
    ) -> tuple[datetime, dict[str, list], str | None]:
        # Like Prometheus, a scrape is stamped with the time it started.
        started = timezone.now()
        try:
            response = client.get(target.url)
            response.raise_for_status()
            return started, self._parse(response.text, target), None
        except httpx.HTTPError as exc:
            return started, {}, f"{type(exc).__name__}: {exc}"
        except ValueError as exc:  # the exposition text did not parse
            return started, {}, f"unparseable metrics: {exc}"

    def _parse(self, text: str, target: ScrapeTarget) -> dict[str, list]:
        samples: dict[str, list] = defaultdict(list)
        version = str(target.version)
        for family in text_string_to_metric_families(text):
            if not family.name.startswith(self.metric_prefixes):
                continue
            for sample in family.samples:
                # NaN is not valid JSON (PostgreSQL rejects it) and means "unknown" anyway.
                if sample.name.endswith("_created") or not math.isfinite(sample.value):
                    continue
                labels = dict(sample.labels)
                if labels.pop("model", target.model) != target.model:
                    continue
                if labels.pop("version", version) != version:
                    continue
                samples[sample.name].append([labels, sample.value])
        return dict(samples)

    # -- protocol ------------------------------------------------------------------------------

    def batch_window_stats(
        self,
        keys: Sequence[VersionKey],
        window_seconds: float,
        end: float | None = None,
        step_seconds: float | None = None,
    ) -> dict[VersionKey, WindowStats | MetricsUnavailable]:
        window, end_ts, step = resolve_window(
            window_seconds, end, step_seconds, min_step=self.min_step_seconds
        )
        loaded = self._load(keys, end_ts - window, end_ts)
        results: dict[VersionKey, WindowStats | MetricsUnavailable] = {}
        for key in unique_keys(keys):
            deltas = loaded.get(key)
            if deltas is None:
                results[key] = _no_data(key)
                continue
            results[key] = _window_stats(key, window, end_ts, step, deltas)
        return results

    def batch_feature_counts(
        self, keys: Sequence[VersionKey], window_seconds: float, end: float | None = None
    ) -> dict[VersionKey, FeatureCounts | MetricsUnavailable]:
        window, end_ts, _ = resolve_window(window_seconds, end, None, min_step=0)
        loaded = self._load(keys, end_ts - window, end_ts)
        results: dict[VersionKey, FeatureCounts | MetricsUnavailable] = {}
        for key in unique_keys(keys):
            deltas = loaded.get(key)
            results[key] = (
                _no_data(key) if deltas is None else _feature_counts(key, window, end_ts, deltas)
            )
        return results

    def batch_series(
        self,
        keys: Sequence[VersionKey],
        name: str,
        window_seconds: float,
        step_seconds: float,
        end: float | None = None,
    ) -> dict[VersionKey, Series | MetricsUnavailable]:
        check_series_name(name)
        window, end_ts, step = resolve_window(window_seconds, end, step_seconds, min_step=0)
        loaded = self._load(keys, end_ts - window, end_ts)
        results: dict[VersionKey, Series | MetricsUnavailable] = {}
        for key in unique_keys(keys):
            deltas = loaded.get(key)
            if deltas is None:
                results[key] = _no_data(key)
                continue
            points = []
            for t, interval in _intervals(deltas, end_ts - window, end_ts, step):
                points.append((t, _interval_value(name, interval)))
            results[key] = Series(key=key, name=name, step_seconds=step, points=tuple(points))
        return results

    def _load(
        self, keys: Sequence[VersionKey], start: float, end: float
    ) -> dict[VersionKey, Deltas]:
        """One SQL statement for every key's scrapes in [start, end]; keys with fewer than two
        scrapes are absent from the answer (an increase needs two)."""
        wanted = unique_keys(keys)
        if not wanted:
            return {}
        rows = (
            MetricScrape.objects.for_versions([(key.model, key.version) for key in wanted])
            .filter(
                scraped_at__gte=datetime.fromtimestamp(start, UTC),
                scraped_at__lte=datetime.fromtimestamp(end, UTC),
            )
            .order_by("model_name", "version", "scraped_at")
            .values_list("model_name", "version", "scraped_at", "samples")
        )
        scrapes: dict[VersionKey, list[tuple[float, dict[str, list]]]] = defaultdict(list)
        for model_name, version, scraped_at, samples in rows:
            scrapes[VersionKey(model_name, version)].append((scraped_at.timestamp(), samples))
        return {key: Deltas.of(found) for key, found in scrapes.items() if len(found) >= 2}


class Deltas:
    """The increase of every counter series between consecutive scrapes, stamped with the later
    scrape's time. A series missing from a successful scrape counts as zero there: the client
    library only exports a labelled child once it is used, and a restarted process starts
    again from nothing, so "absent" and "reset to zero" are the same fact."""

    def __init__(self, points: list[tuple[float, dict[tuple[str, LabelSet], float]]]):
        self.points = points

    @classmethod
    def of(cls, scrapes: list[tuple[float, dict[str, list]]]) -> Deltas:
        flat = [(t, _flatten(samples)) for t, samples in scrapes]
        points = []
        for (_, previous), (t, current) in itertools.pairwise(flat):
            step: dict[tuple[str, LabelSet], float] = {}
            for series in previous.keys() | current.keys():
                before = previous.get(series, 0.0)
                after = current.get(series, 0.0)
                step[series] = after - before if after >= before else after
            points.append((t, step))
        return cls(points)

    def total(
        self, start: float = -math.inf, end: float = math.inf
    ) -> dict[tuple[str, LabelSet], float]:
        summed: dict[tuple[str, LabelSet], float] = defaultdict(float)
        for t, step in self.points:
            if start < t <= end:
                for series, delta in step.items():
                    summed[series] += delta
        return summed


def _flatten(samples: dict[str, list]) -> dict[tuple[str, LabelSet], float]:
    flat = {}
    for name, values in samples.items():
        for labels, value in values:
            if isinstance(value, int | float) and math.isfinite(value):
                flat[(name, tuple(sorted(labels.items())))] = float(value)
    return flat


def _no_data(key: VersionKey) -> NoData:
    return NoData("fewer than two successful scrapes in the window", key=key)


def _sum(totals: dict[tuple[str, LabelSet], float], name: str, **match: Any) -> float:
    result = 0.0
    for (series_name, labels), value in totals.items():
        if series_name != name:
            continue
        label_map = dict(labels)
        if all(check(label_map.get(label, "")) for label, check in match.items()):
            result += value
    return result


def _is_5xx(code: str) -> bool:
    return len(code) == 3 and code.startswith("5")


def _quantile(totals: dict[tuple[str, LabelSet], float], q: float) -> float | None:
    by_bound: dict[float, float] = defaultdict(float)
    for (name, labels), value in totals.items():
        if name == LATENCY_BUCKETS:
            by_bound[float(dict(labels).get("le", "nan"))] += value
    return finite_or_none(histogram_quantile(q, by_bound.items()))


def _interval_value(name: str, totals: dict[tuple[str, LabelSet], float]) -> float | None:
    requests = _sum(totals, REQUESTS)
    if name == "requests":
        return requests
    if name == "errors":
        return _sum(totals, REQUESTS, code=_is_5xx)
    if name == "error_rate":
        return _sum(totals, REQUESTS, code=_is_5xx) / requests if requests > 0 else None
    if name == "rejections":
        return _sum(totals, REJECTIONS)
    if name == "predictions":
        return _sum(totals, PREDICTIONS)
    quantile = {"latency_p50": 0.5, "latency_p95": 0.95, "latency_p99": 0.99}[name]
    return _quantile(totals, quantile) if requests > 0 else None


def _intervals(
    deltas: Deltas, start: float, end: float, step: float
) -> Iterable[tuple[float, dict[tuple[str, LabelSet], float]]]:
    """Steps ending at start + step, start + 2*step, ... end; a step without any scrape in it is
    skipped (unknown), not reported as zero."""
    count = max(math.floor((end - start) / step + 1e-9), 1)
    for index in range(count, 0, -1):
        t = end - (index - 1) * step
        if any(t - step < scrape_t <= t for scrape_t, _ in deltas.points):
            yield t, deltas.total(t - step, t)


def _window_stats(
    key: VersionKey, window: float, end: float, step: float, deltas: Deltas
) -> WindowStats:
    totals = deltas.total()
    requests = _sum(totals, REQUESTS)
    samples = []
    for t, interval in _intervals(deltas, end - window, end, step):
        interval_requests = _sum(interval, REQUESTS)
        samples.append(
            IntervalSample(
                t=t,
                requests=interval_requests,
                error_rate=_interval_value("error_rate", interval),
                p50=_interval_value("latency_p50", interval),
                p95=_interval_value("latency_p95", interval),
            )
        )
    return WindowStats(
        key=key,
        window_seconds=window,
        end=end,
        step_seconds=step,
        requests=requests,
        errors=_sum(totals, REQUESTS, code=_is_5xx),
        rejections=_sum(totals, REJECTIONS),
        predictions=_sum(totals, PREDICTIONS),
        latency_p50=_quantile(totals, 0.5) if requests > 0 else None,
        latency_p95=_quantile(totals, 0.95) if requests > 0 else None,
        latency_p99=_quantile(totals, 0.99) if requests > 0 else None,
        samples=tuple(samples),
        queries=(f"local scrapes of {key} in ({end - window:.3f}, {end:.3f}]",),
    )


def _feature_counts(
    key: VersionKey, window: float, end: float, deltas: Deltas
) -> FeatureCounts | NoData:
    totals = deltas.total()
    per_feature: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    categorical: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    classes: dict[str, float] = defaultdict(float)
    for (name, labels), value in totals.items():
        label_map = dict(labels)
        if name == FEATURE_BUCKETS and "feature" in label_map and "le" in label_map:
            per_feature[label_map["feature"]][float(label_map["le"])] += value
        elif name == FEATURE_CATEGORIES and "feature" in label_map and "category" in label_map:
            categorical[label_map["feature"]][label_map["category"]] += value
        elif name == PREDICTION_CLASSES and "class" in label_map:
            classes[label_map["class"]] += value
    if not (per_feature or categorical or classes):
        return NoData("no feature or prediction series in the window", key=key)
    numeric = {}
    for feature, cumulative in per_feature.items():
        bounds, counts = decumulate(list(cumulative.items()))
        numeric[feature] = NumericFeatureCounts(upper_bounds=bounds, counts=counts)
    return FeatureCounts(
        key=key,
        window_seconds=window,
        end=end,
        numeric=numeric,
        categorical={feature: dict(counts) for feature, counts in categorical.items()},
        prediction_classes=dict(classes),
    )
