"""Prometheus's counter and histogram semantics in plain Python, for the local scrape source, so
the demo's numbers mean what Prometheus's would. Pure functions: no I/O, no Django.

It must never invent data: an empty histogram has no quantile (NaN), not a zero latency.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence


def counter_deltas(values: Sequence[float]) -> list[float]:
    """The increase between consecutive samples of one counter; a drop means the process
    restarted and the counter began again from zero, so the new value is the whole increase
    (as Prometheus's `increase()` treats a reset)."""
    deltas: list[float] = []
    for previous, current in itertools.pairwise(values):
        deltas.append(current - previous if current >= previous else current)
    return deltas


def counter_increase(values: Sequence[float]) -> float:
    """Total increase of a counter over consecutive samples, resets handled; no extrapolation."""
    return sum(counter_deltas(values))


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """The q-quantile of cumulative `(upper_bound, count)` buckets, with the same linear
    interpolation and edge cases as Prometheus 2.x's `histogram_quantile` (promql/quantile.go):
    NaN without a +Inf bucket or observations, the second-highest bound when the rank lands in
    the +Inf bucket, and monotonicity enforced on counts that went down."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    merged: dict[float, float] = {}
    for upper, count in buckets:
        # Same bound twice (e.g. two series that only differ in a dropped label): add them.
        merged[upper] = merged.get(upper, 0.0) + count
    ordered = sorted(merged.items())
    if not ordered or not math.isinf(ordered[-1][0]):
        return math.nan
    counts = []
    running_max = -math.inf
    for _, count in ordered:
        running_max = max(running_max, count)
        counts.append(running_max)
    if len(ordered) < 2:
        return math.nan
    observations = counts[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    index = next((i for i in range(len(ordered) - 1) if counts[i] >= rank), len(ordered) - 1)
    if index == len(ordered) - 1:
        return ordered[-2][0]
    if index == 0 and ordered[0][0] <= 0:
        return ordered[0][0]
    bucket_start = 0.0
    bucket_end = ordered[index][0]
    count = counts[index]
    if index > 0:
        bucket_start = ordered[index - 1][0]
        count -= counts[index - 1]
        rank -= counts[index - 1]
    return bucket_start + (bucket_end - bucket_start) * (rank / count)


def parse_bound(text: str) -> float:
    """A `le` label value as a float ("+Inf" included)."""
    return float(text)


def decumulate(
    buckets: Sequence[tuple[float, float]],
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Cumulative `(le, count)` buckets into per-bucket counts, sorted by bound; a negative
    difference (a reset seen by only some buckets) is clamped to zero rather than reported."""
    ordered = sorted(buckets)
    bounds = tuple(bound for bound, _ in ordered)
    per_bucket: list[float] = []
    previous = 0.0
    for _, cumulative in ordered:
        per_bucket.append(max(cumulative - previous, 0.0))
        previous = max(previous, cumulative)
    return bounds, tuple(per_bucket)
