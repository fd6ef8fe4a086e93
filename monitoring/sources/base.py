"""The `MetricsSource` protocol: what the release engine and the pages ask of a metrics backend,
in the domain's words (a model version's requests, errors, latency, feature counts), not PromQL.

A source must never turn a failed or empty query into a number: it raises `MetricsUnavailable`
(or its subclass `NoData`) so that a dead Prometheus can never look like a healthy 0% error rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from deployments.analysis import ANALYSIS_SAMPLES, SAMPLE_SCRAPES


@dataclass(frozen=True, order=True)
class VersionKey:
    """One model version, as labelled on its metrics (`model`, `version`)."""

    model: str
    version: int

    def __str__(self) -> str:
        return f"{self.model}:v{self.version}"


class MetricsUnavailable(Exception):
    """The source could not answer: unreachable, timed out, a query error, or no data. Callers
    treat it as "unknown", never as zero."""

    def __init__(self, reason: str, *, key: VersionKey | None = None, query: str | None = None):
        self.reason = reason
        self.key = key
        self.query = query
        super().__init__(f"{key}: {reason}" if key else reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": type(self).__name__,
            "reason": self.reason,
            "key": str(self.key) if self.key else None,
            "query": self.query,
        }


class NoData(MetricsUnavailable):
    """The source answered but holds no samples for this version in the window (never scraped,
    not deployed, or the series expired)."""


# The series names `series()` understands; each source maps them onto its own queries.
SERIES_NAMES = (
    "requests",
    "errors",
    "error_rate",
    "rejections",
    "predictions",
    "latency_p50",
    "latency_p95",
    "latency_p99",
)


@dataclass(frozen=True)
class IntervalSample:
    """One step of a window: counts in (t - step, t] and the quantiles of that interval. Rates
    and quantiles are None when the interval had no requests (undefined, not zero)."""

    t: float
    requests: float
    error_rate: float | None
    p50: float | None
    p95: float | None


@dataclass(frozen=True)
class WindowStats:
    """What one model version did over a window. Counts are increases over the window."""

    key: VersionKey
    window_seconds: float
    end: float
    step_seconds: float
    requests: float
    errors: float
    rejections: float
    predictions: float
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    samples: tuple[IntervalSample, ...] = ()
    queries: tuple[str, ...] = ()

    @property
    def error_rate(self) -> float | None:
        """5xx / requests; None with no requests, because "no traffic" is not "no errors"."""
        return self.errors / self.requests if self.requests > 0 else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["key"] = {"model": self.key.model, "version": self.key.version}
        data["error_rate"] = self.error_rate
        data["samples"] = [asdict(sample) for sample in self.samples]
        data["queries"] = list(self.queries)
        return data


@dataclass(frozen=True)
class NumericFeatureCounts:
    """Live counts of one numeric feature per bucket (not cumulative): `counts[i]` values fell in
    (upper_bounds[i-1], upper_bounds[i]]; the last bound is +inf."""

    upper_bounds: tuple[float, ...]
    counts: tuple[float, ...]

    @property
    def total(self) -> float:
        return sum(self.counts)


@dataclass(frozen=True)
class FeatureCounts:
    """Increases over a window of the live input and prediction histograms of one version."""

    key: VersionKey
    window_seconds: float
    end: float
    numeric: dict[str, NumericFeatureCounts] = field(default_factory=dict)
    categorical: dict[str, dict[str, float]] = field(default_factory=dict)
    prediction_classes: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": {"model": self.key.model, "version": self.key.version},
            "window_seconds": self.window_seconds,
            "end": self.end,
            "numeric": {
                name: {
                    "upper_bounds": [_json_float(b) for b in counts.upper_bounds],
                    "counts": list(counts.counts),
                }
                for name, counts in self.numeric.items()
            },
            "categorical": self.categorical,
            "prediction_classes": self.prediction_classes,
        }


@dataclass(frozen=True)
class Series:
    """A range of one named series for a sparkline; values are None where undefined."""

    key: VersionKey
    name: str
    step_seconds: float
    points: tuple[tuple[float, float | None], ...]


BatchResult = dict[VersionKey, Any]


@runtime_checkable
class MetricsSource(Protocol):
    """Every method answers for many versions in a bounded number of round trips (the `batch_`
    forms); the single-key forms raise `MetricsUnavailable` instead of returning it."""

    def batch_window_stats(
        self,
        keys: Sequence[VersionKey],
        window_seconds: float,
        end: float | None = None,
        step_seconds: float | None = None,
    ) -> dict[VersionKey, WindowStats | MetricsUnavailable]: ...

    def window_stats(
        self,
        key: VersionKey,
        window_seconds: float,
        end: float | None = None,
        step_seconds: float | None = None,
    ) -> WindowStats: ...

    def batch_feature_counts(
        self, keys: Sequence[VersionKey], window_seconds: float, end: float | None = None
    ) -> dict[VersionKey, FeatureCounts | MetricsUnavailable]: ...

    def feature_counts(
        self, key: VersionKey, window_seconds: float, end: float | None = None
    ) -> FeatureCounts: ...

    def batch_series(
        self,
        keys: Sequence[VersionKey],
        name: str,
        window_seconds: float,
        step_seconds: float,
        end: float | None = None,
    ) -> dict[VersionKey, Series | MetricsUnavailable]: ...

    def series(
        self,
        key: VersionKey,
        name: str,
        window_seconds: float,
        step_seconds: float,
        end: float | None = None,
    ) -> Series: ...


class SingleKeyMethods:
    """The single-key forms of the protocol, written once on top of the batch forms."""

    def window_stats(
        self,
        key: VersionKey,
        window_seconds: float,
        end: float | None = None,
        step_seconds: float | None = None,
    ) -> WindowStats:
        result = self.batch_window_stats([key], window_seconds, end, step_seconds)  # type: ignore[attr-defined]
        return _raise_if_unavailable(result[key])

    def feature_counts(
        self, key: VersionKey, window_seconds: float, end: float | None = None
    ) -> FeatureCounts:
        result = self.batch_feature_counts([key], window_seconds, end)  # type: ignore[attr-defined]
        return _raise_if_unavailable(result[key])

    def series(
        self,
        key: VersionKey,
        name: str,
        window_seconds: float,
        step_seconds: float,
        end: float | None = None,
    ) -> Series:
        result = self.batch_series([key], name, window_seconds, step_seconds, end)  # type: ignore[attr-defined]
        return _raise_if_unavailable(result[key])


def _raise_if_unavailable(value: Any) -> Any:
    if isinstance(value, MetricsUnavailable):
        raise value
    return value


def resolve_window(
    window_seconds: float, end: float | None, step_seconds: float | None, min_step: float
) -> tuple[float, float, float]:
    """Validate a window and pick the step of its per-interval samples: about ANALYSIS_SAMPLES
    intervals, so a few missed scrapes still leave the 20 the rank tests trust, never shorter
    than `min_step` (a rate over fewer than two scrapes is meaningless)."""
    if not (window_seconds > 0 and math.isfinite(window_seconds)):
        raise ValueError(f"window_seconds must be a positive number, got {window_seconds!r}")
    if step_seconds is not None and not (step_seconds > 0 and math.isfinite(step_seconds)):
        raise ValueError(f"step_seconds must be a positive number, got {step_seconds!r}")
    end_ts = time.time() if end is None else float(end)
    step = (
        step_seconds
        if step_seconds is not None
        else max(window_seconds / ANALYSIS_SAMPLES, min_step)
    )
    return window_seconds, end_ts, min(step, window_seconds)


# A rate's range spans at least this many scrape intervals: one late or missed scrape still
# leaves it two samples (Prometheus' own advice, and Grafana's $__rate_interval). An analysis
# sample's step is one scrape shorter (deployments.analysis.SAMPLE_SCRAPES), so that its range
# is exactly this long and neighbouring samples share one scrape only.
RATE_RANGE_SCRAPES = SAMPLE_SCRAPES + 1


def rate_range(window_seconds: float, step_seconds: float, scrape_interval_seconds: float) -> float:
    """The range of the `rate()`/`increase()` evaluated at each step of a range query: four
    scrapes at least and, when the window holds several steps, one scrape more than the step,
    so that every increase between two consecutive scrapes lies inside some step's range. With
    a range no longer than the step, the increase across each step boundary is seen by no step
    at all, and a short burst that falls there vanishes from a sparkline. Ranges longer than
    the step overlap: per-step counts are scaled by step / range. A window of one step is
    measured over exactly that window (nothing lies between steps)."""
    floor = RATE_RANGE_SCRAPES * scrape_interval_seconds
    if step_seconds >= window_seconds:
        return max(step_seconds, floor)
    return max(step_seconds + scrape_interval_seconds, floor)


def check_series_name(name: str) -> None:
    if name not in SERIES_NAMES:
        raise ValueError(f"unknown series {name!r}; expected one of {', '.join(SERIES_NAMES)}")


def unique_keys(keys: Iterable[VersionKey]) -> list[VersionKey]:
    return list(dict.fromkeys(keys))


def finite_or_none(value: float | None) -> float | None:
    """Prometheus answers NaN for a quantile of an empty histogram: that is "undefined"."""
    if value is None or not math.isfinite(value):
        return None
    return value


def _json_float(value: float) -> float | str:
    return value if math.isfinite(value) else ("+Inf" if value > 0 else "-Inf")
