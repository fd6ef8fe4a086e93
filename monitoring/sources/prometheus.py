"""`PrometheusSource`: the production `MetricsSource`, answering from a Prometheus server through
`prometheus-api-client`. PromQL lives only here, as overridable templates, so a deployment whose
runtime exports other metric names (KServe, Triton) configures templates instead of code.

It must never report a number it did not get: an HTTP error, a timeout, a PromQL error or an
empty answer becomes `MetricsUnavailable` / `NoData`, never a zero.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from deployments.analysis import SAMPLE_SCRAPES
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
    rate_range,
    resolve_window,
    unique_keys,
)
from monitoring.sources.semantics import decumulate

_SELECTOR = 'model="{model}",version="{version}"'
# The serving contract's names (docs/metrics.md) that the templates below and the exported
# Prometheus rules (alerts.prometheus_rules) are both written in: one set of names.
REQUESTS_METRIC = "model_requests_total"
REQUEST_DURATION_BUCKETS = "model_request_duration_seconds_bucket"
SERVER_ERROR_MATCHER = 'code=~"5.."'

# Placeholders: {model}, {version} (escaped label values), {window} (a PromQL duration) and, for
# latency_quantile only, {quantile}. Every other brace is PromQL's own.
DEFAULT_QUERY_TEMPLATES: dict[str, str] = {
    "requests": f"sum(increase({REQUESTS_METRIC}{{{_SELECTOR}}}[{{window}}]))",
    "errors": (
        f"sum(increase({REQUESTS_METRIC}{{{_SELECTOR},{SERVER_ERROR_MATCHER}}}[{{window}}]))"
    ),
    "rejections": f"sum(increase(model_input_rejections_total{{{_SELECTOR}}}[{{window}}]))",
    "predictions": f"sum(increase(model_predictions_total{{{_SELECTOR}}}[{{window}}]))",
    "latency_quantile": (
        "histogram_quantile({quantile}, sum by (le) "
        f"(rate({REQUEST_DURATION_BUCKETS}{{{_SELECTOR}}}[{{window}}])))"
    ),
    "feature_buckets": (
        f"sum by (feature, le) (increase(model_feature_value_bucket{{{_SELECTOR}}}[{{window}}]))"
    ),
    "feature_categories": (
        "sum by (feature, category) "
        f"(increase(model_feature_category_total{{{_SELECTOR}}}[{{window}}]))"
    ),
    "prediction_classes": (
        f"sum by (class) (increase(model_prediction_class_total{{{_SELECTOR}}}[{{window}}]))"
    ),
}

_PLACEHOLDER = re.compile(r"\{(model|version|window|quantile)\}")
# Labels we add to tell the parts of one batched query apart; a runtime's own labels never
# start with this prefix.
_STAT_LABEL = "modelplane_stat"
_KEY_LABEL = "modelplane_key"
_QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
_COUNT_STATS = ("requests", "errors", "rejections", "predictions")


def escape_label_value(value: str) -> str:
    """A label value safe inside a double-quoted PromQL string (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def promql_duration(seconds: float) -> str:
    """Seconds as a PromQL duration; milliseconds because 2.x rejects fractional units ("1.5s")."""
    return f"{max(round(seconds * 1000), 1)}ms"


def render_template(
    template: str, key: VersionKey, window_seconds: float, quantile: float | None = None
) -> str:
    values = {
        "model": escape_label_value(key.model),
        "version": escape_label_value(str(key.version)),
        "window": promql_duration(window_seconds),
        "quantile": repr(quantile) if quantile is not None else "",
    }
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


class PrometheusSource(SingleKeyMethods):
    """Answers the `MetricsSource` protocol with at most two HTTP round trips (one instant, one
    range query) per `max_keys_per_query` versions."""

    def __init__(
        self,
        url: str,
        timeout_seconds: float = 5.0,
        query_templates: Mapping[str, str] | None = None,
        *,
        scrape_interval_seconds: float = 15.0,
        max_keys_per_query: int = 20,
        headers: dict[str, str] | None = None,
    ) -> None:
        unknown = set(query_templates or {}) - set(DEFAULT_QUERY_TEMPLATES)
        if unknown:
            raise ValueError(
                f"unknown query template(s) {sorted(unknown)}; "
                f"known: {sorted(DEFAULT_QUERY_TEMPLATES)}"
            )
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self.url = url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.templates = {**DEFAULT_QUERY_TEMPLATES, **(query_templates or {})}
        self.scrape_interval_seconds = scrape_interval_seconds
        self.max_keys_per_query = max_keys_per_query
        # One quick retry on connect errors and gateway statuses only: the caller is a reconcile
        # loop that will ask again, so a long backoff here only delays "inconclusive".
        retry = Retry(
            total=1, connect=1, read=0, backoff_factor=0.1, status_forcelist=(502, 503, 504)
        )
        self._client = PrometheusConnect(
            url=self.url, headers=headers, retry=retry, timeout=timeout_seconds
        )

    def close(self) -> None:
        self._client.close()

    # -- protocol ------------------------------------------------------------------------------

    def batch_window_stats(
        self,
        keys: Sequence[VersionKey],
        window_seconds: float,
        end: float | None = None,
        step_seconds: float | None = None,
    ) -> dict[VersionKey, WindowStats | MetricsUnavailable]:
        window, end_ts, step = resolve_window(
            window_seconds,
            end,
            step_seconds,
            min_step=SAMPLE_SCRAPES * self.scrape_interval_seconds,
        )
        interval_range = rate_range(window, step, self.scrape_interval_seconds)
        results: dict[VersionKey, WindowStats | MetricsUnavailable] = {}
        for chunk in self._chunks(keys):
            instant_parts = {
                (key, stat): self._stat_query(key, stat, window)
                for key in chunk
                for stat in (*_COUNT_STATS, *_QUANTILES)
            }
            range_parts = {
                (key, stat): self._stat_query(key, stat, interval_range)
                for key in chunk
                for stat in ("requests", "errors", "p50", "p95")
            }
            try:
                instant = self._instant(instant_parts, end_ts)
                ranged = self._range(range_parts, end_ts - window + step, end_ts, step)
            except MetricsUnavailable as exc:
                results.update({key: _for_key(exc, key) for key in chunk})
                continue
            for key in chunk:
                queries = tuple(
                    query for (part_key, _), query in instant_parts.items() if part_key == key
                )
                results[key] = self._window_stats_of(
                    key, window, end_ts, step, instant, ranged, queries, step / interval_range
                )
        return results

    def batch_feature_counts(
        self, keys: Sequence[VersionKey], window_seconds: float, end: float | None = None
    ) -> dict[VersionKey, FeatureCounts | MetricsUnavailable]:
        window, end_ts, _ = resolve_window(window_seconds, end, None, min_step=0)
        results: dict[VersionKey, FeatureCounts | MetricsUnavailable] = {}
        stats = ("feature_buckets", "feature_categories", "prediction_classes")
        for chunk in self._chunks(keys):
            parts = {
                (key, stat): render_template(self.templates[stat], key, window)
                for key in chunk
                for stat in stats
            }
            try:
                answer = self._instant_series(parts, end_ts)
            except MetricsUnavailable as exc:
                results.update({key: _for_key(exc, key) for key in chunk})
                continue
            for key in chunk:
                results[key] = _feature_counts_of(key, window, end_ts, answer)
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
        interval_range = rate_range(window, step, self.scrape_interval_seconds)
        needed = {
            "error_rate": ("requests", "errors"),
            "latency_p50": ("p50",),
            "latency_p95": ("p95",),
            "latency_p99": ("p99",),
        }.get(name, (name,))
        results: dict[VersionKey, Series | MetricsUnavailable] = {}
        for chunk in self._chunks(keys):
            parts = {
                (key, stat): self._stat_query(key, stat, interval_range)
                for key in chunk
                for stat in needed
            }
            try:
                ranged = self._range(parts, end_ts - window + step, end_ts, step)
            except MetricsUnavailable as exc:
                results.update({key: _for_key(exc, key) for key in chunk})
                continue
            for key in chunk:
                results[key] = _series_of(key, name, step, ranged, step / interval_range)
        return results

    # -- queries -------------------------------------------------------------------------------

    def _stat_query(self, key: VersionKey, stat: str, window: float) -> str:
        if stat in _QUANTILES:
            return render_template(
                self.templates["latency_quantile"], key, window, quantile=_QUANTILES[stat]
            )
        return render_template(self.templates[stat], key, window)

    def _chunks(self, keys: Sequence[VersionKey]) -> list[list[VersionKey]]:
        distinct = unique_keys(keys)
        size = self.max_keys_per_query
        return [distinct[i : i + size] for i in range(0, len(distinct), size)]

    def _instant(
        self, parts: dict[tuple[VersionKey, str], str], at: float
    ) -> dict[tuple[VersionKey, str], list[float]]:
        """Scalar answers: every series a part returned, as floats (NaN kept, to be judged)."""
        answer = self._instant_series(parts, at)
        return {part: [value for _, value in series_list] for part, series_list in answer.items()}

    def _instant_series(
        self, parts: dict[tuple[VersionKey, str], str], at: float
    ) -> dict[tuple[VersionKey, str], list[tuple[dict[str, str], float]]]:
        query, tags = _combine(parts)
        raw = self._call(
            lambda: self._client.custom_query(query, params=self._params(time=at)), query
        )
        found: dict[tuple[VersionKey, str], list[tuple[dict[str, str], float]]] = defaultdict(list)
        for item in raw:
            labels = dict(item.get("metric", {}))
            part = tags.get((labels.pop(_KEY_LABEL, ""), labels.pop(_STAT_LABEL, "")))
            if part is not None:
                found[part].append((labels, float(item["value"][1])))
        return found

    def _range(
        self, parts: dict[tuple[VersionKey, str], str], start: float, end: float, step: float
    ) -> dict[tuple[VersionKey, str], dict[float, list[float]]]:
        """Range answers: per part, per timestamp, the values of every series."""
        query, tags = _combine(parts)
        start = min(start, end)
        raw = self._call(
            lambda: self._client.custom_query_range(
                query,
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(end, UTC),
                step=f"{step:g}",
                params=self._params(),
            ),
            query,
        )
        found: dict[tuple[VersionKey, str], dict[float, list[float]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for item in raw:
            labels = item.get("metric", {})
            part = tags.get((labels.get(_KEY_LABEL, ""), labels.get(_STAT_LABEL, "")))
            if part is None:
                continue
            for timestamp, value in item.get("values", []):
                found[part][float(timestamp)].append(float(value))
        return found

    def _params(self, **extra: float) -> dict[str, Any]:
        return {"timeout": f"{self.timeout_seconds:g}s", **extra}

    def _call(self, request: Callable[[], Any], query: str) -> list[dict[str, Any]]:
        try:
            result = request()
        except requests.Timeout as exc:
            raise MetricsUnavailable(
                f"Prometheus at {self.url} timed out after {self.timeout_seconds:g}s", query=query
            ) from exc
        except requests.RequestException as exc:
            raise MetricsUnavailable(
                f"Prometheus at {self.url} is unreachable: {type(exc).__name__}", query=query
            ) from exc
        except PrometheusApiClientException as exc:
            raise MetricsUnavailable(f"Prometheus rejected the query: {exc}", query=query) from exc
        except (ValueError, KeyError) as exc:
            raise MetricsUnavailable(
                f"Prometheus at {self.url} sent an unreadable answer", query=query
            ) from exc
        if not isinstance(result, list):
            raise MetricsUnavailable("Prometheus answered with an unexpected shape", query=query)
        return result

    def _window_stats_of(
        self,
        key: VersionKey,
        window: float,
        end: float,
        step: float,
        instant: dict[tuple[VersionKey, str], list[float]],
        ranged: dict[tuple[VersionKey, str], dict[float, list[float]]],
        queries: tuple[str, ...],
        count_scale: float,
    ) -> WindowStats | MetricsUnavailable:
        requests_values = instant.get((key, "requests"))
        if not requests_values:
            return NoData(
                "no request series in the window (not scraped, or never served)",
                key=key,
                query=self._stat_query(key, "requests", window),
            )
        # The request series exist, so the target was scraped: an absent 5xx (or rejection)
        # series means that code never happened, which is a true zero.
        counts = {stat: sum(instant.get((key, stat), [])) for stat in _COUNT_STATS}
        quantiles = {}
        for stat in _QUANTILES:
            values = [v for v in instant.get((key, stat), []) if math.isfinite(v)]
            quantiles[stat] = values[0] if len(values) == 1 else None
        return WindowStats(
            key=key,
            window_seconds=window,
            end=end,
            step_seconds=step,
            requests=counts["requests"],
            errors=counts["errors"],
            rejections=counts["rejections"],
            predictions=counts["predictions"],
            latency_p50=quantiles["p50"],
            latency_p95=quantiles["p95"],
            latency_p99=quantiles["p99"],
            samples=_interval_samples(key, ranged, count_scale),
            queries=queries,
        )


def _combine(
    parts: dict[tuple[VersionKey, str], str],
) -> tuple[str, dict[tuple[str, str], tuple[VersionKey, str]]]:
    """One PromQL query for many parts: each part's result is tagged with two labels and the
    parts are joined with `or` (their label sets differ, so nothing is dropped)."""
    key_ids: dict[VersionKey, str] = {}
    tags: dict[tuple[str, str], tuple[VersionKey, str]] = {}
    pieces = []
    for (key, stat), expression in parts.items():
        key_id = key_ids.setdefault(key, str(len(key_ids)))
        tags[(key_id, stat)] = (key, stat)
        pieces.append(
            f'label_replace(label_replace(({expression}), "{_STAT_LABEL}", "{stat}", "", ""), '
            f'"{_KEY_LABEL}", "{key_id}", "", "")'
        )
    return " or ".join(pieces), tags


def _for_key(exc: MetricsUnavailable, key: VersionKey) -> MetricsUnavailable:
    return type(exc)(exc.reason, key=key, query=exc.query)


def _interval_samples(
    key: VersionKey,
    ranged: dict[tuple[VersionKey, str], dict[float, list[float]]],
    count_scale: float,
) -> tuple[IntervalSample, ...]:
    """Per-step samples; a step where the request series has no value is left out (unknown),
    never filled with zero. Counts are scaled to one step (`count_scale` = step / range) when
    the ranges overlap, so they do not add up to more than was served."""
    request_points = ranged.get((key, "requests"), {})
    samples = []
    for t in sorted(request_points):
        total = sum(request_points[t])
        errors = sum(ranged.get((key, "errors"), {}).get(t, []))
        samples.append(
            IntervalSample(
                t=t,
                requests=total * count_scale,
                error_rate=errors / total if total > 0 else None,
                p50=_single(ranged.get((key, "p50"), {}).get(t)) if total > 0 else None,
                p95=_single(ranged.get((key, "p95"), {}).get(t)) if total > 0 else None,
            )
        )
    return tuple(samples)


def _single(values: list[float] | None) -> float | None:
    if not values or len(values) != 1:
        return None
    return finite_or_none(values[0])


def _series_of(
    key: VersionKey,
    name: str,
    step: float,
    ranged: dict[tuple[VersionKey, str], dict],
    count_scale: float,
) -> Series | MetricsUnavailable:
    """Counts are per step (scaled down when the ranges overlap), rates and quantiles as is."""
    if name == "error_rate":
        request_points = ranged.get((key, "requests"), {})
        error_points = ranged.get((key, "errors"), {})
        points = []
        for t in sorted(request_points):
            total = sum(request_points[t])
            errors = sum(error_points.get(t, []))
            points.append((t, errors / total if total > 0 else None))
    else:
        stat = {"latency_p50": "p50", "latency_p95": "p95", "latency_p99": "p99"}.get(name, name)
        stat_points = ranged.get((key, stat), {})
        if stat in _QUANTILES:
            points = [(t, _single(values)) for t, values in sorted(stat_points.items())]
        else:
            points = [(t, sum(values) * count_scale) for t, values in sorted(stat_points.items())]
    if not points:
        return NoData(f"no {name} series in the window", key=key)
    return Series(key=key, name=name, step_seconds=step, points=tuple(points))


def _feature_counts_of(
    key: VersionKey,
    window: float,
    end: float,
    answer: dict[tuple[VersionKey, str], list[tuple[dict[str, str], float]]],
) -> FeatureCounts | MetricsUnavailable:
    buckets = answer.get((key, "feature_buckets"), [])
    categories = answer.get((key, "feature_categories"), [])
    classes = answer.get((key, "prediction_classes"), [])
    if not (buckets or categories or classes):
        return NoData("no feature or prediction series in the window", key=key)
    per_feature: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for labels, value in buckets:
        if "feature" in labels and "le" in labels and math.isfinite(value):
            per_feature[labels["feature"]].append((float(labels["le"]), value))
    numeric = {}
    for feature, cumulative in per_feature.items():
        bounds, counts = decumulate(cumulative)
        numeric[feature] = NumericFeatureCounts(upper_bounds=bounds, counts=counts)
    categorical: dict[str, dict[str, float]] = defaultdict(dict)
    for labels, value in categories:
        if "feature" in labels and "category" in labels and math.isfinite(value):
            categorical[labels["feature"]][labels["category"]] = value
    prediction_classes = {
        labels["class"]: value
        for labels, value in classes
        if "class" in labels and math.isfinite(value)
    }
    return FeatureCounts(
        key=key,
        window_seconds=window,
        end=end,
        numeric=numeric,
        categorical=dict(categorical),
        prediction_classes=prediction_classes,
    )
