"""SLO maths: error budgets, multiwindow multi-burn-rate alerts and latency SLIs from histograms.

Pure functions over numbers (ratios, counts, cumulative histogram buckets); it must never import
Django or query Prometheus. The burn-rate rules follow the Google SRE workbook, chapter
"Alerting on SLOs": page when both a long and a short window burn fast, so an alert starts
quickly and stops soon after the problem does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from monitoring.durations import parse_duration


def _check_objective(objective: float) -> None:
    if not 0 < objective < 1:
        raise ValueError("objective must be strictly between 0 and 1 (e.g. 0.999)")


@dataclass(frozen=True)
class ErrorBudget:
    """Error budget over a window.

    ``allowed`` is the number of bad events the objective tolerates, ``consumed`` the share of
    that spent (1.0 = exactly spent, more when overspent) and ``remaining`` = 1 - consumed,
    negative when overspent so a page can say by how much.
    """

    objective: float
    good: float
    total: float
    bad: float
    allowed: float
    consumed: float
    remaining: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def error_budget(objective: float = 0.999, good: float = 0.0, total: float = 0.0) -> ErrorBudget:
    """Budget of ``total`` events at ``objective`` given ``good`` of them succeeded.

    No events is a full budget (nothing was spent).
    """
    _check_objective(objective)
    if not (math.isfinite(good) and math.isfinite(total)) or good < 0 or total < 0:
        raise ValueError("good and total must be finite and non-negative")
    if good > total:
        raise ValueError("good cannot exceed total")
    bad = total - good
    allowed = (1 - objective) * total
    consumed = bad / allowed if allowed > 0 else 0.0
    return ErrorBudget(objective, good, total, bad, allowed, consumed, 1.0 - consumed)


def burn_rate(error_ratio: float, objective: float) -> float:
    """How fast the budget burns: error ratio / (1 - objective); 1.0 spends it exactly on time."""
    _check_objective(objective)
    if not math.isfinite(error_ratio) or not 0 <= error_ratio <= 1:
        raise ValueError("error_ratio must be within [0, 1]")
    return error_ratio / (1 - objective)


class Severity(StrEnum):
    PAGE = "page"
    TICKET = "ticket"


@dataclass(frozen=True)
class BurnRateRule:
    severity: Severity
    long_window: str
    short_window: str
    threshold: float  # burn rate both windows must exceed


# SRE workbook, table 5-8 for a 30-day 99.9% SLO: 2% of the budget in 1 h and 5% in 6 h page,
# 10% in 3 days opens a ticket. The short window is 1/12 of the long one.
DEFAULT_BURN_RATE_RULES: tuple[BurnRateRule, ...] = (
    BurnRateRule(Severity.PAGE, "1h", "5m", 14.4),
    BurnRateRule(Severity.PAGE, "6h", "30m", 6.0),
    BurnRateRule(Severity.TICKET, "3d", "6h", 1.0),
)
# Every window the rules above read, shortest first (1h/5m, 6h/30m, 3d/6h).
BURN_WINDOWS: tuple[str, ...] = tuple(
    sorted(
        {w for rule in DEFAULT_BURN_RATE_RULES for w in (rule.long_window, rule.short_window)},
        key=parse_duration,
    )
)
# The window of the error budget: the SRE workbook's four weeks.
SLO_WINDOW = "28d"
SLO_WINDOW_SECONDS = parse_duration(SLO_WINDOW)


@dataclass(frozen=True)
class BurnAlert:
    severity: Severity
    long_window: str
    short_window: str
    threshold: float
    burn_rates: dict[str, float]  # window -> burn rate, for the two windows of the rule

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = str(self.severity)
        return data


def burn_rate_alerts(
    ratios_by_window: Mapping[str, float],
    objective: float,
    rules: Iterable[BurnRateRule] = DEFAULT_BURN_RATE_RULES,
) -> list[BurnAlert]:
    """Alerts whose long *and* short window burn rates both exceed the rule's threshold.

    ``ratios_by_window`` maps a window (``"5m"``, ``"1h"``, ``"60m"`` are matched by duration)
    to the error ratio over it. A rule whose windows are missing or NaN (no data) does not
    fire; callers treating no data as a problem must check for it themselves.
    """
    _check_objective(objective)
    by_seconds: dict[float, float] = {}
    for window, ratio in ratios_by_window.items():
        if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)):
            continue
        by_seconds[parse_duration(window)] = burn_rate(ratio, objective)
    alerts = []
    for rule in rules:
        long_rate = by_seconds.get(parse_duration(rule.long_window))
        short_rate = by_seconds.get(parse_duration(rule.short_window))
        if long_rate is None or short_rate is None:
            continue
        if long_rate > rule.threshold and short_rate > rule.threshold:
            alerts.append(
                BurnAlert(
                    severity=rule.severity,
                    long_window=rule.long_window,
                    short_window=rule.short_window,
                    threshold=rule.threshold,
                    burn_rates={rule.long_window: long_rate, rule.short_window: short_rate},
                )
            )
    return alerts


# --------------------------------------------------------------------------------------------
# Latency SLO from a Prometheus histogram
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencySLI:
    """Share of requests at or under the latency target."""

    target_seconds: float
    good: float
    total: float
    ratio: float | None  # None without requests
    exact: bool  # False when the target falls inside a bucket and was interpolated

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def latency_sli(
    buckets: Mapping[Any, float] | Sequence[tuple[Any, float]], target_seconds: float
) -> LatencySLI:
    """Good-request share from cumulative ``le`` buckets (a scrape or an ``increase``).

    When ``target_seconds`` is a bucket boundary the answer is exact; set SLO targets on
    boundaries. Otherwise the count inside the bucket is interpolated linearly, the same
    assumption ``histogram_quantile`` makes (the lowest bucket is taken to start at 0).
    """
    if not math.isfinite(target_seconds) or target_seconds < 0:
        raise ValueError("target_seconds must be a finite, non-negative number")
    items = buckets.items() if isinstance(buckets, Mapping) else buckets
    pairs = np.asarray(sorted((float(le), float(c)) for le, c in items), dtype=np.float64)
    if pairs.size == 0 or not math.isinf(pairs[-1, 0]):
        raise ValueError("histogram buckets must include le=+Inf")
    les, cumulative = pairs[:, 0], np.maximum.accumulate(np.clip(pairs[:, 1], 0.0, None))
    total = float(cumulative[-1])
    if total == 0:
        return LatencySLI(target_seconds, 0.0, 0.0, None, True)
    idx = int(np.searchsorted(les, target_seconds, side="left"))
    if les[idx] == target_seconds:
        good, exact = float(cumulative[idx]), True
    elif math.isinf(les[idx]):
        # Beyond the last finite boundary nothing is known: count only what is surely good.
        good, exact = float(cumulative[idx - 1]) if idx > 0 else 0.0, False
    else:
        lower = float(les[idx - 1]) if idx > 0 else 0.0
        below = float(cumulative[idx - 1]) if idx > 0 else 0.0
        fraction = (target_seconds - lower) / (float(les[idx]) - lower)
        good, exact = below + fraction * (float(cumulative[idx]) - below), False
    return LatencySLI(target_seconds, good, total, good / total, exact)
