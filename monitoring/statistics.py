"""Canary-versus-stable statistics (the judgement Kayenta makes): shift, spread and thresholds.

Pure NumPy/SciPy on in-memory samples; it must never touch the database or fetch metrics. Its
verdicts are the engine's own (deployments.analysis.Verdict), and every result keeps all of its
numbers (``as_dict()``) so a release step can store them as evidence. Too little data is
``inconclusive``, never ``pass``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from scipy import stats

from core.jsonsafe import json_safe
from deployments.analysis import Verdict

ArrayLike = Sequence[float] | np.ndarray

# Below this many samples per side the normal approximations behind the CI are poor and a
# canary step would pass on noise; such comparisons are inconclusive.
DEFAULT_MIN_SAMPLES = 20

# Materialise all m*n pairwise differences up to this many (32 MB of float64); above it the
# order statistics are found by bisection with counting instead.
_MAX_MATERIALISED_PAIRS = 4_000_000


class Direction(StrEnum):
    INCREASE_IS_BAD = "increase_is_bad"  # latency, error rate, cost
    DECREASE_IS_BAD = "decrease_is_bad"  # accuracy, throughput
    EITHER_IS_BAD = "either_is_bad"


# scipy's `alternative` for "experiment compared with control" in each direction.
_ALTERNATIVE = {
    Direction.INCREASE_IS_BAD: "greater",
    Direction.DECREASE_IS_BAD: "less",
    Direction.EITHER_IS_BAD: "two-sided",
}


@dataclass(frozen=True)
class Comparison:
    """Result of comparing an experiment (canary) sample with a control (stable) sample.

    ``estimate`` is the test's effect in the metric's units (Hodges-Lehmann shift, or the
    difference in mean absolute deviation from the median for spread) with a ``confidence``
    CI; ``relative_effect`` is that effect relative to the control (0.10 = 10% worse or
    better), compared with ``effect_threshold`` to ignore significant but trivial changes.
    """

    test: str
    verdict: Verdict
    reason: str
    direction: Direction
    alpha: float
    control_n: int
    experiment_n: int
    statistic: float | None = None
    p_value: float | None = None
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    effect_size: float | None = None
    relative_effect: float | None = None
    effect_threshold: float = 0.0
    control_summary: dict[str, float] = field(default_factory=dict)
    experiment_summary: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict (non-finite floats become None: jsonb rejects them)."""
        return json_safe(asdict(self))


def _samples(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: samples contain NaN or inf")
    return arr


def _summary(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {}
    q25, q50, q75, q90, q99 = np.quantile(x, [0.25, 0.5, 0.75, 0.9, 0.99])
    return {
        "mean": float(x.mean()),
        "p25": float(q25),
        "median": float(q50),
        "p75": float(q75),
        "p90": float(q90),
        "p99": float(q99),
        "iqr": float(q75 - q25),
    }


def _check_args(direction: str, alpha: float, effect_threshold: float) -> Direction:
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    if effect_threshold < 0:
        raise ValueError("effect_threshold must be >= 0")
    return Direction(direction)


def _is_bad(
    direction: Direction, relative: float | None, estimate: float, threshold: float
) -> bool:
    """Whether the effect points in the bad direction by at least the threshold."""
    if direction is Direction.INCREASE_IS_BAD and estimate <= 0:
        return False
    if direction is Direction.DECREASE_IS_BAD and estimate >= 0:
        return False
    if estimate == 0:
        return False
    # Without a relative scale (control centre 0) significance in the bad direction decides.
    return relative is None or abs(relative) >= threshold


# --------------------------------------------------------------------------------------------
# Hodges-Lehmann shift and its distribution-free confidence interval
# --------------------------------------------------------------------------------------------


def _count_diffs_at_most(x_sorted: np.ndarray, y: np.ndarray, d: float) -> int:
    # #{(i, j): y_j - x_i <= d} = sum_j #{i: x_i >= y_j - d}
    return int(x_sorted.size * y.size - np.searchsorted(x_sorted, y - d, side="left").sum())


def pairwise_difference_order_statistics(
    control: np.ndarray, experiment: np.ndarray, ranks: Sequence[int]
) -> list[float]:
    """The k-th smallest (1-based) of all ``experiment_j - control_i`` for each k in ``ranks``.

    Small inputs materialise the m*n differences and use ``np.partition``; large ones bisect
    on the value with a vectorised count (O(m log n) per step), so memory stays O(m + n).
    """
    x = np.sort(np.asarray(control, dtype=np.float64))
    y = np.asarray(experiment, dtype=np.float64)
    total = x.size * y.size
    ks = [int(k) for k in ranks]
    if any(k < 1 or k > total for k in ks):
        raise ValueError(f"ranks must be within 1..{total}")
    if total <= _MAX_MATERIALISED_PAIRS:
        diffs = np.subtract.outer(y, x).ravel()
        diffs.partition([k - 1 for k in ks])
        return [float(diffs[k - 1]) for k in ks]
    out = []
    span_lo, span_hi = float(y.min() - x.max()), float(y.max() - x.min())
    tol = 1e-12 * max(span_hi - span_lo, np.finfo(np.float64).tiny)
    for k in ks:
        # Invariant: count(<= lo) < k <= count(<= hi).
        lo, hi = math.nextafter(span_lo, -math.inf), span_hi
        for _ in range(200):
            if hi - lo <= tol:
                break
            mid = lo + (hi - lo) / 2
            if _count_diffs_at_most(x, y, mid) >= k:
                hi = mid
            else:
                lo = mid
        # The k-th difference is the smallest one above lo: for each y_j the largest x_i with
        # y_j - x_i > lo, then the minimum over j. This makes the result exact, not bisected.
        idx = np.searchsorted(x, y - lo, side="left") - 1
        valid = idx >= 0
        out.append(float(np.min(y[valid] - x[idx[valid]])))
    return out


def hodges_lehmann(
    control: ArrayLike, experiment: ArrayLike, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Hodges-Lehmann shift (median of pairwise differences) with its CI.

    The CI is distribution-free: its bounds are the order statistics of the m*n differences at
    ranks ``C`` and ``m*n + 1 - C`` with ``C = floor(m*n/2 - z * sqrt(m*n*(m+n+1)/12))`` (the
    normal approximation to the Mann-Whitney U distribution, no tie correction, which widens
    the interval slightly: conservative). Returns ``(shift, ci_low, ci_high)``.
    """
    x = _samples(control, "control")
    y = _samples(experiment, "experiment")
    if x.size == 0 or y.size == 0:
        raise ValueError("both samples need at least one value")
    m, n = x.size, y.size
    total = m * n
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    c = math.floor(total / 2 - z * math.sqrt(total * (m + n + 1) / 12))
    c = min(max(c, 1), total)
    # The median of an even count is the mean of the two middle values.
    mid_lo, mid_hi = (total + 1) // 2, total // 2 + 1
    lo, med_a, med_b, hi = pairwise_difference_order_statistics(
        x, y, [c, mid_lo, mid_hi, total + 1 - c]
    )
    return (med_a + med_b) / 2, lo, hi


# --------------------------------------------------------------------------------------------
# Public comparisons
# --------------------------------------------------------------------------------------------


def _too_few(
    test: str,
    direction: Direction,
    alpha: float,
    x: np.ndarray,
    y: np.ndarray,
    min_samples: int,
    effect_threshold: float,
) -> Comparison:
    return Comparison(
        test=test,
        verdict=Verdict.INCONCLUSIVE,
        reason=(
            f"too few samples (control {x.size}, experiment {y.size}; need {min_samples} each)"
        ),
        direction=direction,
        alpha=alpha,
        control_n=int(x.size),
        experiment_n=int(y.size),
        effect_threshold=effect_threshold,
        control_summary=_summary(x),
        experiment_summary=_summary(y),
    )


def mann_whitney_compare(
    control: ArrayLike,
    experiment: ArrayLike,
    direction: str = Direction.INCREASE_IS_BAD,
    alpha: float = 0.05,
    effect_threshold: float = 0.05,
    *,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> Comparison:
    """Did the experiment's location move in the bad direction, significantly and materially?

    Mann-Whitney U (one-sided in the bad direction, two-sided for ``either_is_bad``) says
    whether the shift is real; the Hodges-Lehmann estimate and its (1 - alpha) CI say how big;
    ``relative_effect`` = shift / |control median| is compared with ``effect_threshold``.
    ``effect_size`` is the rank-biserial correlation 2U/(mn) - 1 (P(exp > ctrl) - P(exp <
    ctrl)). Fails only when significant *and* at least ``effect_threshold`` in the bad
    direction; too few samples is inconclusive.
    """
    dir_ = _check_args(direction, alpha, effect_threshold)
    x = _samples(control, "control")
    y = _samples(experiment, "experiment")
    test = "mann_whitney_u"
    if x.size < min_samples or y.size < min_samples:
        return _too_few(test, dir_, alpha, x, y, min_samples, effect_threshold)

    result = stats.mannwhitneyu(y, x, alternative=_ALTERNATIVE[dir_], method="asymptotic")
    u = float(result.statistic)
    p_value = float(result.pvalue)
    shift, ci_low, ci_high = hodges_lehmann(x, y, confidence=1 - alpha)
    control_median = float(np.median(x))
    relative = shift / abs(control_median) if control_median != 0 else None
    rank_biserial = 2 * u / (x.size * y.size) - 1

    significant = p_value < alpha
    bad = _is_bad(dir_, relative, shift, effect_threshold)
    rel_text = f"{relative:+.1%}" if relative is not None else "n/a"
    if significant and bad:
        verdict = Verdict.FAIL
        reason = (
            f"experiment shifted by {shift:+.6g} ({rel_text} of control median), "
            f"p={p_value:.3g} < {alpha}"
        )
    elif significant:
        verdict = Verdict.PASS
        reason = (
            f"significant shift {shift:+.6g} ({rel_text}) is below the {effect_threshold:.1%} "
            "threshold or not in the bad direction"
        )
    else:
        verdict = Verdict.PASS
        reason = f"no significant shift (p={p_value:.3g} >= {alpha})"
    return Comparison(
        test=test,
        verdict=verdict,
        reason=reason,
        direction=dir_,
        alpha=alpha,
        control_n=int(x.size),
        experiment_n=int(y.size),
        statistic=u,
        p_value=p_value,
        estimate=shift,
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=1 - alpha,
        effect_size=rank_biserial,
        relative_effect=relative,
        effect_threshold=effect_threshold,
        control_summary=_summary(x),
        experiment_summary=_summary(y),
    )


def spread_compare(
    control: ArrayLike,
    experiment: ArrayLike,
    direction: str = Direction.INCREASE_IS_BAD,
    alpha: float = 0.05,
    effect_threshold: float = 0.10,
    *,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> Comparison:
    """Did the experiment's spread grow (e.g. latency jitter) even if its median did not?

    Brown-Forsythe test: Levene's test on absolute deviations from each group's *median*,
    which keeps its size under the skewed, heavy-tailed distributions latency has (the
    mean-centred Levene and the F-test do not). With two groups its F statistic is the square
    of Student's t on those deviations, so the t-test gives the one-sided version and a CI for
    the difference in mean absolute deviation (``estimate``). ``relative_effect`` is the ratio
    of mean absolute deviations minus 1; ``effect_size`` is the log of that ratio.
    """
    dir_ = _check_args(direction, alpha, effect_threshold)
    x = _samples(control, "control")
    y = _samples(experiment, "experiment")
    test = "brown_forsythe"
    if x.size < min_samples or y.size < min_samples:
        return _too_few(test, dir_, alpha, x, y, min_samples, effect_threshold)

    dev_x = np.abs(x - np.median(x))
    dev_y = np.abs(y - np.median(y))
    mad_x, mad_y = float(dev_x.mean()), float(dev_y.mean())
    if mad_x == 0 and mad_y == 0:
        return Comparison(
            test=test,
            verdict=Verdict.PASS,
            reason="both samples are constant",
            direction=dir_,
            alpha=alpha,
            control_n=int(x.size),
            experiment_n=int(y.size),
            estimate=0.0,
            relative_effect=0.0,
            effect_threshold=effect_threshold,
            control_summary=_summary(x),
            experiment_summary=_summary(y),
        )
    res = stats.ttest_ind(dev_y, dev_x, equal_var=True, alternative=_ALTERNATIVE[dir_])
    # A two-sided interval even for a one-sided test: a one-sided bound is infinite.
    two_sided = stats.ttest_ind(dev_y, dev_x, equal_var=True)
    ci = two_sided.confidence_interval(confidence_level=1 - alpha)
    p_value = float(res.pvalue)
    estimate = mad_y - mad_x
    relative = mad_y / mad_x - 1 if mad_x > 0 else None
    effect = math.log(mad_y / mad_x) if mad_x > 0 and mad_y > 0 else None

    significant = p_value < alpha
    bad = _is_bad(dir_, relative, estimate, effect_threshold)
    rel_text = f"{relative:+.1%}" if relative is not None else "n/a"
    if significant and bad:
        verdict = Verdict.FAIL
        reason = f"spread changed by {rel_text} (mean |x - median|), p={p_value:.3g} < {alpha}"
    elif significant:
        verdict = Verdict.PASS
        reason = (
            f"significant spread change {rel_text} is below the {effect_threshold:.1%} "
            "threshold or not in the bad direction"
        )
    else:
        verdict = Verdict.PASS
        reason = f"no significant spread change (p={p_value:.3g} >= {alpha})"
    return Comparison(
        test=test,
        verdict=verdict,
        reason=reason,
        direction=dir_,
        alpha=alpha,
        control_n=int(x.size),
        experiment_n=int(y.size),
        statistic=float(res.statistic) ** 2,  # the Brown-Forsythe F statistic
        p_value=p_value,
        estimate=estimate,
        ci_low=float(ci.low),
        ci_high=float(ci.high),
        confidence=1 - alpha,
        effect_size=effect,
        relative_effect=relative,
        effect_threshold=effect_threshold,
        control_summary=_summary(x),
        experiment_summary=_summary(y),
    )


@dataclass(frozen=True)
class ThresholdCheck:
    """An absolute SLO limit check (e.g. p99 latency <= 0.3 s, error rate <= 1%)."""

    verdict: Verdict
    value: float | None
    limit: float
    direction: Direction
    margin: float | None  # how far inside (+) or beyond (-) the limit the value is
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def threshold_check(
    value: float | None, limit: float, direction: str = Direction.INCREASE_IS_BAD
) -> ThresholdCheck:
    """``increase_is_bad``: pass while value <= limit; ``decrease_is_bad``: while value >= limit.

    A missing or NaN value (no data, failed query) is inconclusive, never a pass.
    """
    dir_ = Direction(direction)
    if dir_ is Direction.EITHER_IS_BAD:
        raise ValueError("an absolute threshold needs increase_is_bad or decrease_is_bad")
    if not math.isfinite(limit):
        raise ValueError("limit must be finite")
    if value is None or math.isnan(value):
        return ThresholdCheck(Verdict.INCONCLUSIVE, None, limit, dir_, None, "no data")
    margin = limit - value if dir_ is Direction.INCREASE_IS_BAD else value - limit
    if margin >= 0:
        op = "<=" if dir_ is Direction.INCREASE_IS_BAD else ">="
        return ThresholdCheck(Verdict.PASS, value, limit, dir_, margin, f"{value:g} {op} {limit:g}")
    op = ">" if dir_ is Direction.INCREASE_IS_BAD else "<"
    return ThresholdCheck(Verdict.FAIL, value, limit, dir_, margin, f"{value:g} {op} {limit:g}")
