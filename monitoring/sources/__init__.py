"""Metrics sources: where canary analysis, drift and the pages read a model version's numbers."""

from monitoring.sources.base import (
    FeatureCounts,
    IntervalSample,
    MetricsSource,
    MetricsUnavailable,
    NoData,
    NumericFeatureCounts,
    Series,
    VersionKey,
    WindowStats,
)

__all__ = [
    "FeatureCounts",
    "IntervalSample",
    "MetricsSource",
    "MetricsUnavailable",
    "NoData",
    "NumericFeatureCounts",
    "Series",
    "VersionKey",
    "WindowStats",
]
