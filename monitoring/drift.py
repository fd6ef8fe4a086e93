"""Drift maths: PSI, Jensen-Shannon, KS and Wasserstein, baseline profiles and drift reports.

Pure NumPy/SciPy on in-memory arrays, plain dicts and a source's `FeatureCounts`: it must never
import Django, query Prometheus or touch files, so the release engine, the pages and the
analysis can all call it.

Binning convention (shared by baseline profiles, ``bin_counts`` and the serving histograms):
a profile's ``bin_edges`` are ``[e0, e1, ..., eN]`` and the live Prometheus histogram has
``le`` buckets at ``e1 .. e(N-1)`` plus ``+Inf``. Bin ``i`` therefore holds values in
``(e(i-1), e(i)]`` (right-closed, as ``le`` means "less or equal"), the first bin also holds
everything at or below ``e1`` (including values below ``e0``) and the last bin everything above
``e(N-1)`` (including values above ``eN``). ``e0`` and ``eN`` only record the baseline's range.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import distributions

from monitoring.sources.base import FeatureCounts

# Added to every proportion before renormalising, so an empty bin on either side gives a large
# but finite PSI term (ln(0.1 / 1e-4) ~ 6.9) instead of inf. Same order as common practice
# (Evidently floors empty bins at 1e-4).
DEFAULT_PSI_EPS = 1e-4

# Label used by the serving metrics for categories it has never seen in the baseline.
OTHER_CATEGORY = "__other__"

ArrayLike = Sequence[float] | np.ndarray


class DriftStatus(StrEnum):
    OK = "ok"
    WARN = "warn"
    INSUFFICIENT_DATA = "insufficient_data"
    ALERT = "alert"


# Overall status is the worst feature. Insufficient data ranks above warn: "we cannot tell"
# must pause a release (inconclusive), whereas a warning alone does not.
_SEVERITY = {
    DriftStatus.OK: 0,
    DriftStatus.WARN: 1,
    DriftStatus.INSUFFICIENT_DATA: 2,
    DriftStatus.ALERT: 3,
}


def worst_status(statuses: Iterable[DriftStatus]) -> DriftStatus:
    """The most severe status; nothing to judge is ``insufficient_data``, never ``ok``."""
    return max(statuses, key=_SEVERITY.__getitem__, default=DriftStatus.INSUFFICIENT_DATA)


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _as_counts(counts: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(counts, dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.shape[-1] == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D or 2-D array of counts")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: counts must be finite")
    if np.any(arr < 0):
        raise ValueError(f"{name}: counts must not be negative")
    return arr


def _as_samples(samples: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(samples, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError(f"{name}: no samples")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: samples contain NaN or inf; drop or impute missing values first")
    return arr


# --------------------------------------------------------------------------------------------
# PSI
# --------------------------------------------------------------------------------------------


def smoothed_proportions(counts: ArrayLike, eps: float = DEFAULT_PSI_EPS) -> np.ndarray:
    """Counts -> proportions with ``eps`` added to each and renormalised to sum to 1.

    Works on the last axis, so a 2-D array gives one distribution per row.
    """
    arr = _as_counts(counts, "counts")
    totals = arr.sum(axis=-1, keepdims=True)
    if np.any(totals <= 0):
        raise ValueError("counts: a distribution with no observations has no proportions")
    p = arr / totals + eps
    return p / p.sum(axis=-1, keepdims=True)


def psi_many(
    ref_counts: ArrayLike, cur_counts: ArrayLike, eps: float = DEFAULT_PSI_EPS
) -> np.ndarray:
    """PSI for many features at once: rows are features, columns the same bins on both sides.

    PSI = sum_i (ref_i - cur_i) * ln(ref_i / cur_i) over smoothed proportions (see
    ``smoothed_proportions``). Returns one value per row (or a 0-d array for 1-D input).
    """
    if eps <= 0:
        raise ValueError("eps must be positive")
    ref = _as_counts(ref_counts, "ref_counts")
    cur = _as_counts(cur_counts, "cur_counts")
    if ref.shape != cur.shape:
        raise ValueError(f"ref_counts {ref.shape} and cur_counts {cur.shape} must have one shape")
    p = smoothed_proportions(ref, eps)
    q = smoothed_proportions(cur, eps)
    return np.sum((p - q) * np.log(p / q), axis=-1)


def psi(ref_counts: ArrayLike, cur_counts: ArrayLike, eps: float = DEFAULT_PSI_EPS) -> float:
    """Population Stability Index of two count vectors over the same bins (always >= 0)."""
    ref = np.asarray(ref_counts, dtype=np.float64)
    if ref.ndim != 1:
        raise ValueError("psi takes 1-D count vectors; use psi_many for 2-D arrays")
    return float(psi_many(ref, cur_counts, eps))


# --------------------------------------------------------------------------------------------
# Categorical: Jensen-Shannon distance
# --------------------------------------------------------------------------------------------


def align_categories(
    ref_freqs: Mapping[str, float], cur_freqs: Mapping[str, float]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Union of categories (baseline order first, then new ones sorted) and aligned counts.

    A category missing on one side counts 0 there: a category never seen in the baseline
    (or reported as ``__other__``) shows up as mass the baseline does not have.
    """
    labels = [str(k) for k in ref_freqs]
    seen = set(labels)
    labels += sorted(str(k) for k in cur_freqs if str(k) not in seen)
    ref_map = {str(k): v for k, v in ref_freqs.items()}
    cur_map = {str(k): v for k, v in cur_freqs.items()}
    ref = _as_counts([ref_map.get(k, 0.0) for k in labels] or [0.0], "ref_freqs")
    cur = _as_counts([cur_map.get(k, 0.0) for k in labels] or [0.0], "cur_freqs")
    return labels, ref, cur


def js_distance(ref_freqs: Mapping[str, float], cur_freqs: Mapping[str, float]) -> float:
    """Jensen-Shannon distance (base 2, so in [0, 1]) between two category -> count maps.

    Needs no smoothing: JS is finite when a category is absent on one side (it is then 1 for
    fully disjoint supports).
    """
    _, ref, cur = align_categories(ref_freqs, cur_freqs)
    if ref.sum() <= 0 or cur.sum() <= 0:
        raise ValueError("js_distance: both sides need at least one observation")
    # scipy normalises p and q itself; clip tiny negative rounding from sqrt of ~0.
    return float(max(0.0, jensenshannon(ref, cur, base=2.0)))


# --------------------------------------------------------------------------------------------
# Raw samples: KS and Wasserstein
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleDrift:
    """KS and Wasserstein-1 for one feature from raw samples, computed from one sort."""

    ks_statistic: float
    ks_pvalue: float
    wasserstein: float
    ref_n: int
    cur_n: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ks_and_wasserstein(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> tuple[float, float]:
    """KS statistic and Wasserstein-1 of two sorted samples, from one merge of the two.

    |F_ref - F_cur| is taken at every pooled value, in pooled order. A stable argsort of the two
    concatenated sorted runs is a linear merge (timsort finds the two runs), and counting the
    reference values up to each position gives both ECDFs there, with no binary search. Inside a
    run of equal values only the run's last position has both ECDFs complete: the others are
    skipped for KS and weigh nothing in W (their step to the next value is 0), so both numbers
    are the ones `searchsorted` at every pooled value gives, to the last bit.
    """
    n, m = ref_sorted.size, cur_sorted.size
    both = np.concatenate([ref_sorted, cur_sorted])
    order = np.argsort(both, kind="stable")
    pooled = both[order]
    del both
    count = np.int32 if n + m < 2**31 else np.int64
    ref_seen = np.cumsum(order < n, dtype=count)
    cur_seen = np.arange(1, n + m + 1, dtype=count)
    cur_seen -= ref_seen
    del order
    gaps = ref_seen / n
    gaps -= cur_seen / m
    np.abs(gaps, out=gaps)
    steps = np.diff(pooled)
    # The last gap is |1 - 1| = 0: the start value for the maximum over the runs' ends.
    d = float(np.max(gaps[:-1], where=steps > 0, initial=gaps[-1]))
    steps *= gaps[:-1]
    return d, float(np.sum(steps))


def _ks_pvalue(d: float, n1: int, n2: int) -> float:
    # Asymptotic two-sided p-value, as scipy.stats.ks_2samp(method="asymp").
    en = n1 * n2 / (n1 + n2)
    return float(np.clip(distributions.kstwo.sf(d, np.round(en)), 0.0, 1.0))


def compare_samples(ref_samples: ArrayLike, cur_samples: ArrayLike) -> SampleDrift:
    """KS statistic (with asymptotic p-value) and Wasserstein-1 distance, sharing one sort."""
    ref = np.sort(_as_samples(ref_samples, "ref_samples"))
    cur = np.sort(_as_samples(cur_samples, "cur_samples"))
    d, w = _ks_and_wasserstein(ref, cur)
    return SampleDrift(
        ks_statistic=d,
        ks_pvalue=_ks_pvalue(d, ref.size, cur.size),
        wasserstein=w,
        ref_n=int(ref.size),
        cur_n=int(cur.size),
    )


def ks_statistic(ref_samples: ArrayLike, cur_samples: ArrayLike) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: max |F_ref(x) - F_cur(x)|."""
    ref = np.sort(_as_samples(ref_samples, "ref_samples"))
    cur = np.sort(_as_samples(cur_samples, "cur_samples"))
    return _ks_and_wasserstein(ref, cur)[0]


def wasserstein(ref_samples: ArrayLike, cur_samples: ArrayLike) -> float:
    """Wasserstein-1 (earth mover's) distance: integral of |F_ref(x) - F_cur(x)| dx."""
    ref = np.sort(_as_samples(ref_samples, "ref_samples"))
    cur = np.sort(_as_samples(cur_samples, "cur_samples"))
    return _ks_and_wasserstein(ref, cur)[1]


@dataclass(frozen=True)
class ColumnsDrift:
    """Per column of two samples: the reference's quantile bins, both sides' counts in them,
    PSI, KS (statistic, asymptotic p-value) and Wasserstein-1. Arrays are indexed by column."""

    bin_edges: list[np.ndarray]
    ref_counts: list[np.ndarray]
    cur_counts: list[np.ndarray]
    psi: np.ndarray
    ks_statistic: np.ndarray
    ks_pvalue: np.ndarray
    wasserstein: np.ndarray


def _sorted_finite(column: np.ndarray, name: str) -> np.ndarray:
    values = np.sort(column)
    # NaN sorts last and -inf first: the ends tell whether every value is finite.
    if values.size == 0:
        raise ValueError(f"{name}: no samples")
    if not (math.isfinite(values[0]) and math.isfinite(values[-1])):
        raise ValueError(f"{name}: samples contain NaN or inf; drop or impute missing values first")
    return values


def _quantile_edges_of_sorted(values: np.ndarray, bins: int) -> np.ndarray:
    """`quantile_bin_edges` of an already sorted sample: no partition, the inverted-CDF order
    statistics are read at the indices np.quantile computes for them."""
    lo, hi = float(values[0]), float(values[-1])
    if bins == 1:
        return np.array([lo, hi])
    probs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    # numpy's "inverted_cdf" index: n*q - 1, rounded up unless it is whole, at least 0.
    index = values.size * probs - 1
    below = np.floor(index)
    at = np.where(index - below == 0, below, below + 1).astype(np.intp)
    at[at < 0] = 0
    return np.concatenate([[lo], np.unique(values[at]), [hi]])


def _counts_of_sorted(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """`bin_counts` of a sorted sample: bins up to i hold the values <= inner edge i."""
    upto = np.searchsorted(values, edges[1:-1], side="right")
    return np.diff(upto, prepend=0, append=values.size).astype(np.int64)


def _compare_column(ref: np.ndarray, cur: np.ndarray, bins: int, name: str) -> tuple:
    ref_sorted = _sorted_finite(ref, f"{name} (reference)")
    cur_sorted = _sorted_finite(cur, f"{name} (current)")
    edges = _quantile_edges_of_sorted(ref_sorted, bins)
    d, w = _ks_and_wasserstein(ref_sorted, cur_sorted)
    return (
        edges,
        _counts_of_sorted(ref_sorted, edges),
        _counts_of_sorted(cur_sorted, edges),
        d,
        _ks_pvalue(d, ref_sorted.size, cur_sorted.size),
        w,
    )


def compare_sample_columns(
    ref: np.ndarray,
    cur: np.ndarray,
    bins: int = 10,
    *,
    eps: float = DEFAULT_PSI_EPS,
    max_workers: int | None = None,
) -> ColumnsDrift:
    """PSI on the reference's quantile bins, KS and Wasserstein-1 for every column of two raw
    samples (rows x columns, the same columns; column-major arrays avoid a strided copy).

    The same numbers as, per column, `quantile_bin_edges` of the reference, `bin_counts` of
    both sides, `psi` and `compare_samples`, from one sort per side: the quantiles are read off
    the sorted reference, the bins are `searchsorted` of the edges into each sorted side, and KS
    and Wasserstein come from one merge of the two. Columns run on a pool of ``max_workers``
    threads (default: one per CPU); NumPy's sorts and merges release the GIL.
    """
    if bins < 1:
        raise ValueError("bins must be >= 1")
    ref_arr = np.asarray(ref, dtype=np.float64)
    cur_arr = np.asarray(cur, dtype=np.float64)
    if ref_arr.ndim != 2 or cur_arr.ndim != 2 or ref_arr.shape[1] != cur_arr.shape[1]:
        raise ValueError("ref and cur must be 2-D (rows x columns) with the same columns")
    columns = ref_arr.shape[1]
    workers = max(1, min(columns, max_workers or os.cpu_count() or 1))

    def one(j: int) -> tuple:
        return _compare_column(ref_arr[:, j], cur_arr[:, j], bins, f"column {j}")

    if workers == 1:
        results = [one(j) for j in range(columns)]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="drift") as pool:
            results = list(pool.map(one, range(columns)))
    edges = [r[0] for r in results]
    ref_counts = [r[1] for r in results]
    cur_counts = [r[2] for r in results]
    psi_values = np.empty(columns)
    by_bins: dict[int, list[int]] = {}
    for j, counts in enumerate(ref_counts):
        by_bins.setdefault(counts.size, []).append(j)
    for rows in by_bins.values():
        psi_values[rows] = psi_many(
            np.array([ref_counts[j] for j in rows]), np.array([cur_counts[j] for j in rows]), eps
        )
    return ColumnsDrift(
        bin_edges=edges,
        ref_counts=ref_counts,
        cur_counts=cur_counts,
        psi=psi_values,
        ks_statistic=np.array([r[3] for r in results]),
        ks_pvalue=np.array([r[4] for r in results]),
        wasserstein=np.array([r[5] for r in results]),
    )


# --------------------------------------------------------------------------------------------
# Binning and baseline profiles
# --------------------------------------------------------------------------------------------


def _check_edges(bin_edges: ArrayLike) -> np.ndarray:
    edges = np.asarray(bin_edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2:
        raise ValueError("bin_edges: need at least two edges (one bin)")
    if not np.all(np.isfinite(edges)):
        raise ValueError("bin_edges must be finite")
    if np.any(np.diff(edges) < 0) or np.any(np.diff(edges[1:-1]) <= 0):
        raise ValueError("bin_edges must be non-decreasing with strictly increasing inner edges")
    return edges


def bin_counts(samples: ArrayLike, bin_edges: ArrayLike) -> np.ndarray:
    """Per-bin counts exactly as the serving histogram buckets values (see module docstring).

    Values outside ``[e0, eN]`` fall into the end bins. Returns int64 counts of length N.
    """
    edges = _check_edges(bin_edges)
    values = _as_samples(samples, "samples")
    # side="left": x == e_i goes into bin i, whose Prometheus bucket is le=e_i.
    idx = np.searchsorted(edges[1:-1], values, side="left")
    return np.bincount(idx, minlength=edges.size - 1).astype(np.int64)


def quantile_bin_edges(samples: ArrayLike, bins: int = 10) -> np.ndarray:
    """Quantile bin edges ``[min, q(1/b), ..., q((b-1)/b), max]``, inner edges deduplicated.

    Inner edges are observed values (inverted-CDF quantiles), so with right-closed bins each
    bin holds its upper edge's ties. On heavily tied data there are fewer than ``bins`` bins;
    a point mass at the minimum gives ``e0 == e1`` (a bin for exactly that value), and a value
    above the baseline maximum lands in a bin with no baseline mass.
    """
    if bins < 1:
        raise ValueError("bins must be >= 1")
    values = _as_samples(samples, "samples")
    lo, hi = float(values.min()), float(values.max())
    if bins == 1:
        return np.array([lo, hi])
    probs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    inner = np.unique(np.quantile(values, probs, method="inverted_cdf"))
    return np.concatenate([[lo], inner, [hi]])


def _is_numeric_column(column: np.ndarray) -> bool:
    return column.dtype.kind in "biuf"


def _categorical_frequencies(column: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(column.astype(str), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return {str(values[i]): int(counts[i]) for i in order}


def column_profile(column: ArrayLike, bins: int = 10) -> dict[str, Any]:
    """Profile of one column: numeric (quantile bins) or categorical (frequencies)."""
    arr = np.asarray(column)
    if arr.size == 0:
        raise ValueError("column has no values")
    if _is_numeric_column(arr) and arr.dtype.kind != "b":
        edges = quantile_bin_edges(arr, bins)
        return {
            "type": "numeric",
            "bin_edges": edges.tolist(),
            "counts": bin_counts(arr, edges).tolist(),
        }
    return {"type": "categorical", "frequencies": _categorical_frequencies(arr.ravel())}


def profile_from_samples(
    X: np.ndarray | Mapping[str, ArrayLike],
    bins: int = 10,
    *,
    feature_names: Sequence[str] | None = None,
    predictions: ArrayLike | None = None,
) -> dict[str, Any]:
    """Build the baseline profile stored on a model version from training/evaluation data.

    ``X`` is a 2-D array (columns named ``feature_names`` or ``f0, f1, ...``) or a mapping of
    column name -> values. Numeric columns get quantile bins; strings and booleans get
    frequencies. ``predictions`` (optional) is profiled the same way under ``"prediction"``.
    """
    if isinstance(X, Mapping):
        columns = {str(name): np.asarray(values) for name, values in X.items()}
    else:
        matrix = np.asarray(X)
        if matrix.ndim != 2:
            raise ValueError("X must be 2-D (rows x features) or a mapping of columns")
        names = list(feature_names) if feature_names is not None else None
        if names is None:
            names = [f"f{i}" for i in range(matrix.shape[1])]
        if len(names) != matrix.shape[1]:
            raise ValueError("feature_names must name every column of X")
        columns = {name: matrix[:, i] for i, name in enumerate(names)}
    lengths = {len(col) for col in columns.values()}
    if len(lengths) > 1:
        raise ValueError("all columns must have the same number of rows")
    rows = lengths.pop() if lengths else 0
    profile: dict[str, Any] = {
        "features": {name: column_profile(col, bins) for name, col in columns.items()},
        "rows": int(rows),
    }
    if predictions is not None:
        preds = np.asarray(predictions)
        if len(preds) != rows and columns:
            raise ValueError("predictions must have one value per row")
        profile["prediction"] = column_profile(preds, bins)
    return profile


# --------------------------------------------------------------------------------------------
# Prometheus histograms -> per-bin counts
# --------------------------------------------------------------------------------------------


def _bucket_pairs(buckets: Mapping[Any, float] | Iterable[tuple[Any, float]]) -> np.ndarray:
    items = buckets.items() if isinstance(buckets, Mapping) else buckets
    pairs = sorted((float(le), float(count)) for le, count in items)
    if not pairs or not math.isinf(pairs[-1][0]):
        raise ValueError("histogram buckets must include le=+Inf")
    return np.asarray(pairs, dtype=np.float64)


def counts_from_cumulative(
    buckets: Mapping[Any, float] | Iterable[tuple[Any, float]],
    bin_edges: ArrayLike | None = None,
) -> np.ndarray:
    """Cumulative ``le`` bucket counts -> per-bin counts (length = number of buckets).

    ``buckets`` maps ``le`` (``"0.5"``, ``0.5`` or ``"+Inf"``) to a cumulative count, either a
    scrape or ``increase(...[window])``. ``increase`` extrapolates each series separately, so
    tiny negative bins can appear; they are clipped to 0. With ``bin_edges`` the ``le`` set is
    checked against the profile (``bin_edges[1:-1]`` + ``+Inf``).
    """
    pairs = _bucket_pairs(buckets)
    if bin_edges is not None:
        edges = _check_edges(bin_edges)
        expected = np.append(edges[1:-1], np.inf)
        if pairs.shape[0] != expected.size or not np.allclose(
            pairs[:-1, 0], expected[:-1], rtol=1e-9, atol=1e-12
        ):
            raise ValueError(
                f"histogram le buckets {pairs[:, 0].tolist()} do not match the baseline "
                f"bin edges (expected le={expected.tolist()})"
            )
    cumulative = pairs[:, 1]
    if not np.all(np.isfinite(cumulative)):
        raise ValueError("bucket counts must be finite")
    return np.clip(np.diff(cumulative, prepend=0.0), 0.0, None)


def counts_from_increase(
    start: Mapping[Any, float] | Iterable[tuple[Any, float]],
    end: Mapping[Any, float] | Iterable[tuple[Any, float]],
    bin_edges: ArrayLike | None = None,
) -> np.ndarray:
    """Per-bin counts observed between two scrapes of the same cumulative histogram.

    A counter reset (the process restarted, so the ``+Inf`` total went down) means the
    ``end`` scrape alone is what was observed since the restart, as Prometheus assumes.
    """
    before = counts_from_cumulative(start, bin_edges)
    after = counts_from_cumulative(end, bin_edges)
    if before.shape != after.shape:
        raise ValueError("start and end scrapes have different buckets")
    if after.sum() < before.sum():
        return after
    return np.clip(after - before, 0.0, None)


def live_counts_of(counts: FeatureCounts) -> dict[str, Any]:
    """A metrics source's `FeatureCounts` in the shape `drift_report` takes: the one conversion,
    for the canary analysis and the pages alike. Numeric features go back to cumulative `le`
    buckets, so `drift_report` checks them against the profile's bin edges (a version exporting
    other buckets than its profile is an error, not a silent misalignment)."""
    features: dict[str, Any] = {}
    for name, numeric in counts.numeric.items():
        # What np.cumsum gives (float64, added in order), without an array per feature.
        cumulative = itertools.accumulate(map(float, numeric.counts))
        features[name] = dict(zip(numeric.upper_bounds, cumulative, strict=True))
    features.update({name: dict(categories) for name, categories in counts.categorical.items()})
    return {"features": features, "prediction": dict(counts.prediction_classes) or None}


# --------------------------------------------------------------------------------------------
# Drift report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftThresholds:
    """PSI and JS-distance limits, and the live count below which no verdict is given."""

    warn: float = 0.1
    alert: float = 0.25
    js_warn: float = 0.1
    js_alert: float = 0.2
    min_count: int = 100
    eps: float = DEFAULT_PSI_EPS

    def __post_init__(self) -> None:
        if not 0 <= self.warn <= self.alert:
            raise ValueError("PSI thresholds need 0 <= warn <= alert")
        if not 0 <= self.js_warn <= self.js_alert <= 1:
            raise ValueError("JS thresholds need 0 <= js_warn <= js_alert <= 1")
        if self.min_count < 1:
            raise ValueError("min_count must be >= 1")

    def classify(self, metric: str, value: float) -> DriftStatus:
        warn, alert = (self.warn, self.alert) if metric == "psi" else (self.js_warn, self.js_alert)
        if value >= alert:
            return DriftStatus.ALERT
        if value >= warn:
            return DriftStatus.WARN
        return DriftStatus.OK


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: str  # "numeric" | "categorical"
    metric: str  # "psi" | "js_distance"
    value: float | None
    status: DriftStatus
    labels: list[str]  # bin ranges or categories, aligned with the proportions
    ref_proportions: list[float]
    cur_proportions: list[float]
    ref_count: float
    cur_count: float
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        # Spelled out: `dataclasses.asdict` deep-copies every list element by element, which cost
        # more than the whole drift maths (about 50 us a feature).
        return {
            "name": self.name,
            "kind": self.kind,
            "metric": self.metric,
            "value": self.value,
            "status": str(self.status),
            "labels": list(self.labels),
            "ref_proportions": list(self.ref_proportions),
            "cur_proportions": list(self.cur_proportions),
            "ref_count": self.ref_count,
            "cur_count": self.cur_count,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class DriftReport:
    status: DriftStatus
    features: dict[str, FeatureDrift]
    prediction: FeatureDrift | None
    thresholds: DriftThresholds
    notes: list[str] = field(default_factory=list)

    @property
    def drifted_features(self) -> list[str]:
        alerting = (DriftStatus.WARN, DriftStatus.ALERT)
        return [name for name, f in self.features.items() if f.status in alerting]

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "features": {name: f.as_dict() for name, f in self.features.items()},
            "prediction": self.prediction.as_dict() if self.prediction else None,
            "thresholds": asdict(self.thresholds),
            "drifted_features": self.drifted_features,
            "notes": list(self.notes),
        }


def _bin_labels(edges: Sequence[float] | np.ndarray) -> list[str]:
    n = len(edges) - 1
    if n == 1:
        return ["(-inf, +inf)"]
    labels = [f"(-inf, {edges[1]:.6g}]"]
    labels += [f"({edges[i]:.6g}, {edges[i + 1]:.6g}]" for i in range(1, n - 1)]
    labels.append(f"({edges[n - 1]:.6g}, +inf)")
    return labels


def _proportions_list(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return (counts / total).tolist() if total > 0 else [0.0] * counts.size


def _compare_distribution(
    name: str, ref_spec: Mapping[str, Any], live: Any, thresholds: DriftThresholds
) -> FeatureDrift:
    kind = ref_spec.get("type")
    if kind == "numeric":
        edges = _check_edges(ref_spec["bin_edges"])
        ref = _as_counts(ref_spec["counts"], f"{name}.counts")
        if ref.shape != (edges.size - 1,):
            raise ValueError(f"{name}: baseline has {ref.size} counts for {edges.size - 1} bins")
        labels = _bin_labels(edges)
        metric = "psi"
        cur = None
        if isinstance(live, Mapping) and live:
            cur = counts_from_cumulative(live, edges)
        elif live is not None and not isinstance(live, Mapping):
            # An empty mapping is a histogram with no series yet: no data, not an error.
            cur = _as_counts(live, f"{name} live counts")
        if cur is not None and cur.shape != ref.shape:
            raise ValueError(f"{name}: live has {cur.size} bins, baseline {ref.size}")
    elif kind == "categorical":
        metric = "js_distance"
        if live is not None and not isinstance(live, Mapping):
            raise ValueError(f"{name}: live counts of a categorical feature must be a mapping")
        labels, ref, cur = align_categories(ref_spec["frequencies"], live or {})
        if live is None:
            cur = None
    else:
        raise ValueError(f"{name}: unknown profile type {kind!r}")

    ref_count = float(ref.sum())
    cur_count = float(cur.sum()) if cur is not None else 0.0
    common = {
        "name": name,
        "kind": kind,
        "metric": metric,
        "labels": labels,
        "ref_proportions": _proportions_list(ref),
        "cur_proportions": _proportions_list(cur) if cur is not None else [],
        "ref_count": ref_count,
        "cur_count": cur_count,
    }
    if ref_count <= 0:
        return FeatureDrift(
            value=None,
            status=DriftStatus.INSUFFICIENT_DATA,
            reason="the baseline profile has no observations",
            **common,
        )
    if cur is None or cur_count < thresholds.min_count:
        return FeatureDrift(
            value=None,
            status=DriftStatus.INSUFFICIENT_DATA,
            reason=f"{cur_count:g} live observations, fewer than {thresholds.min_count}",
            **common,
        )
    if metric == "psi":
        value = float(psi_many(ref, cur, thresholds.eps))
    else:
        value = float(max(0.0, jensenshannon(ref, cur, base=2.0)))
    return FeatureDrift(value=value, status=thresholds.classify(metric, value), **common)


class _PerFeature(Exception):
    """Raised by the batched path for input it leaves to `_compare_distribution`."""


def _is_close(a: float, b: float) -> bool:
    # np.isclose(a, b, rtol=1e-9, atol=1e-12) on two floats, as `counts_from_cumulative` checks.
    return a == b or abs(a - b) <= 1e-12 + 1e-9 * abs(b)


def _compare_numeric_batch(
    baseline_features: Mapping[str, Any],
    live_features: Mapping[str, Any],
    thresholds: DriftThresholds,
) -> dict[str, FeatureDrift]:
    """`_compare_distribution` for every numeric feature at once, with the same numbers.

    A canary analysis or a tile compares some twenty features of ten bins: per feature the
    maths is a microsecond, and the dozens of NumPy calls on ten-element arrays around it
    (validation, bucket conversion, proportions, PSI) were what took the time. Here the Python
    work per feature is list handling, and the numbers are computed in one NumPy call per step
    for all features with the same bin count: row-wise the operations are the ones
    `_compare_distribution` applies to each feature (same element-wise ufuncs, same per-row
    reductions), so the results are identical (tests/monitoring_math/test_drift.py checks).

    Raises `_PerFeature` (or the error of a malformed value) for anything it does not check
    itself: the caller then runs the per-feature path, which raises the precise error.
    """
    by_bins: dict[int, list[tuple[str, list[float], Any, Any]]] = {}
    for name, spec in baseline_features.items():
        if not isinstance(spec, Mapping) or spec.get("type") != "numeric":
            continue
        edges = [float(e) for e in spec["bin_edges"]]
        ref_counts = spec["counts"]
        bins = len(edges) - 1
        if bins < 1 or len(ref_counts) != bins:
            raise _PerFeature(name)
        live = live_features.get(name)
        cur: Any = None
        if isinstance(live, Mapping) and live:
            pairs = sorted((float(le), float(count)) for le, count in live.items())
            if not math.isinf(pairs[-1][0]) or len(pairs) != bins:
                raise _PerFeature(name)
            if not all(_is_close(a[0], b) for a, b in zip(pairs, edges[1:-1], strict=False)):
                raise _PerFeature(name)
            cur = ("cumulative", [count for _, count in pairs])
        elif live is not None and not isinstance(live, Mapping):
            if len(live) != bins:
                raise _PerFeature(name)
            cur = ("counts", live)
        by_bins.setdefault(bins, []).append((name, edges, ref_counts, cur))
    out: dict[str, FeatureDrift] = {}
    for group in by_bins.values():
        out.update(_compare_numeric_group(group, thresholds))
    return out


def _compare_numeric_group(
    group: list[tuple[str, list[float], Any, Any]], thresholds: DriftThresholds
) -> dict[str, FeatureDrift]:
    """The batched comparison of features with the same number of bins (see above)."""
    k, bins = len(group), len(group[0][1]) - 1
    edges = np.array([g[1] for g in group], dtype=np.float64)
    ref = np.array([g[2] for g in group], dtype=np.float64)
    if ref.shape != (k, bins):
        raise _PerFeature("baseline counts")
    # _check_edges and _as_counts, row by row.
    steps = edges[:, 1:] - edges[:, :-1]
    if not (
        np.isfinite(edges).all()
        and (steps >= 0).all()
        and (steps[:, 1:-1] > 0).all()
        and np.isfinite(ref).all()
        and (ref >= 0).all()
    ):
        raise _PerFeature("edges or baseline counts")
    cur = np.zeros((k, bins))
    has_live = np.zeros(k, dtype=bool)
    for kind in ("cumulative", "counts"):
        rows = [i for i, g in enumerate(group) if g[3] is not None and g[3][0] == kind]
        if not rows:
            continue
        values = np.array([group[i][3][1] for i in rows], dtype=np.float64)
        if values.shape != (len(rows), bins) or not np.isfinite(values).all():
            raise _PerFeature("live counts")
        if kind == "cumulative":
            # counts_from_cumulative
            values = np.clip(np.diff(values, axis=1, prepend=0.0), 0.0, None)
        elif (values < 0).any():
            raise _PerFeature("live counts")
        cur[rows] = values
        has_live[rows] = True
    ref_totals = ref.sum(axis=1)
    cur_totals = cur.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref_props = (ref / ref_totals[:, None]).tolist()
        cur_props = (cur / cur_totals[:, None]).tolist()
    judged = has_live & (ref_totals > 0) & (cur_totals >= thresholds.min_count)
    values_of: dict[int, float] = {}
    if judged.any():
        rows = np.flatnonzero(judged)
        psis = psi_many(ref[rows], cur[rows], thresholds.eps).tolist()
        values_of = dict(zip(rows.tolist(), psis, strict=True))
    out: dict[str, FeatureDrift] = {}
    edge_rows = edges.tolist()
    for i, (name, _, _, _) in enumerate(group):
        ref_count, cur_count = float(ref_totals[i]), float(cur_totals[i])
        common = {
            "name": name,
            "kind": "numeric",
            "metric": "psi",
            "labels": _bin_labels(edge_rows[i]),
            "ref_proportions": ref_props[i] if ref_count > 0 else [0.0] * bins,
            "cur_proportions": (
                (cur_props[i] if cur_count > 0 else [0.0] * bins) if has_live[i] else []
            ),
            "ref_count": ref_count,
            "cur_count": cur_count if has_live[i] else 0.0,
        }
        if ref_count <= 0:
            out[name] = FeatureDrift(
                value=None,
                status=DriftStatus.INSUFFICIENT_DATA,
                reason="the baseline profile has no observations",
                **common,
            )
        elif i not in values_of:
            out[name] = FeatureDrift(
                value=None,
                status=DriftStatus.INSUFFICIENT_DATA,
                reason=f"{common['cur_count']:g} live observations, "
                f"fewer than {thresholds.min_count}",
                **common,
            )
        else:
            value = values_of[i]
            out[name] = FeatureDrift(
                value=value, status=thresholds.classify("psi", value), **common
            )
    return out


def drift_report(
    baseline_profile: Mapping[str, Any],
    live_counts: Mapping[str, Any],
    thresholds: DriftThresholds | None = None,
) -> DriftReport:
    """Compare live histograms with the baseline profile stored on a model version.

    ``live_counts`` is ``{"features": {name: counts}, "prediction": counts}`` where counts are,
    for a numeric feature, per-bin counts (list) or cumulative ``le`` buckets (mapping, turned
    into per-bin counts and checked against the bin edges), and for a categorical feature a
    category -> count mapping. A feature with fewer than ``thresholds.min_count`` live
    observations is ``insufficient_data``, never ``ok``. The overall status is the worst of the
    features and the prediction.
    """
    thresholds = thresholds or DriftThresholds()
    baseline_features = baseline_profile.get("features") or {}
    live_features = live_counts.get("features") or {}
    notes = [
        f"live feature {name!r} is not in the baseline profile; ignored"
        for name in live_features
        if name not in baseline_features
    ]
    try:
        batched = _compare_numeric_batch(baseline_features, live_features, thresholds)
    except (_PerFeature, ArithmeticError, LookupError, TypeError, ValueError):
        # Input the batch does not vouch for: the per-feature path below gives the same
        # numbers, or raises the same error, feature by feature in the profile's order.
        batched = {}
    features = {
        name: batched.get(name)
        or _compare_distribution(name, spec, live_features.get(name), thresholds)
        for name, spec in baseline_features.items()
    }
    prediction = None
    if baseline_profile.get("prediction"):
        prediction = _compare_distribution(
            "prediction", baseline_profile["prediction"], live_counts.get("prediction"), thresholds
        )
    statuses = [f.status for f in features.values()]
    if prediction is not None:
        statuses.append(prediction.status)
    if not statuses:
        notes.append("the baseline profile has no features")
    return DriftReport(
        status=worst_status(statuses),
        features=features,
        prediction=prediction,
        thresholds=thresholds,
        notes=notes,
    )
