"""Canary against stable across a release's analysis windows, read back from the evidence each
analysis step stored (engine.steps._analyze, monitoring.analysis.analyze_canary): error rate,
p95 latency, and the canary's drift where it was judged, each with its limit. Pure shaping of
the steps the caller prefetched: it never queries, never writes and never re-judges a window."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .models import Release, ReleaseStep


@dataclass(frozen=True)
class Window:
    """One analysis window: the recorded step that judged it."""

    step_id: int
    at: datetime
    label: str  # "20%", "20% (2)" for a window repeated at the same weight, "shadow"
    verdict: str


@dataclass(frozen=True)
class Series:
    name: str  # "stable v2"
    role: str  # stable | canary | canary-js: how a chart draws it
    values: list[float | None]  # one per window, in the chart's unit; None: not measured


@dataclass(frozen=True)
class Chart:
    key: str  # a page anchor: "chart-error-rate"
    title: str
    unit: str  # "%", "ms", "" (an index)
    y_label: str
    windows: list[Window]
    series: list[Series]
    limit: float | None  # the SLO or alert limit, in the chart's unit
    limit_label: str

    @property
    def rows(self) -> list[tuple[Window, list[float | None]]]:
        """The numbers window by window, for the table under the chart."""
        return [(w, [s.values[i] for s in self.series]) for i, w in enumerate(self.windows)]


def analysis_steps(steps: Iterable[ReleaseStep]) -> list[ReleaseStep]:
    """The analysis steps that measured both versions, oldest first."""
    return [
        s
        for s in steps
        if s.kind == "analysis"
        and isinstance(s.evidence, dict)
        and (s.evidence.get("stable_stats") or s.evidence.get("canary_stats"))
    ]


def release_charts(release: Release) -> list[Chart]:
    """Error rate and p95 latency charts, and a drift chart when any window judged drift; []
    before the first analysis window."""
    measured = analysis_steps(release.steps.all())
    if not measured:
        return []
    windows = _windows(measured)
    stable_v, canary_v = _versions(release, measured[-1].evidence)
    charts = [
        _stable_vs_canary(
            "chart-error-rate",
            "Error rate",
            "%",
            "Error rate (%)",
            windows,
            measured,
            stat="error_rate",
            scale=100.0,
            check="error_rate",
            threshold="max_error_rate",
            versions=(stable_v, canary_v),
        ),
        _stable_vs_canary(
            "chart-latency-p95",
            "p95 latency",
            "ms",
            "p95 latency (ms)",
            windows,
            measured,
            stat="latency_p95",
            scale=1000.0,
            check="latency_p95",
            threshold="max_latency_p95_seconds",
            versions=(stable_v, canary_v),
        ),
    ]
    drift = _drift(windows, measured, canary_v)
    if drift is not None:
        charts.append(drift)
    return charts


def _windows(measured: list[ReleaseStep]) -> list[Window]:
    seen: dict[str, int] = {}
    out = []
    for step in measured:
        weight = step.evidence.get("weight")
        base = f"{weight}%" if weight else "shadow"
        seen[base] = seen.get(base, 0) + 1
        label = base if seen[base] == 1 else f"{base} ({seen[base]})"
        out.append(Window(step.pk, step.created_at, label, step.outcome))
    return out


def _versions(release: Release, evidence: dict[str, Any]) -> tuple[str, str]:
    def number(side: str, fallback: int | None) -> str:
        found = (evidence.get(side) or {}).get("version", fallback)
        return f"v{found}" if found is not None else side

    stable_fallback = release.from_version.number if release.from_version else None
    return number("stable", stable_fallback), number("canary", release.version.number)


def _number(value: Any, scale: float = 1.0) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value) * scale
    return value if math.isfinite(value) else None


def _stable_vs_canary(
    key: str,
    title: str,
    unit: str,
    y_label: str,
    windows: list[Window],
    measured: list[ReleaseStep],
    *,
    stat: str,
    scale: float,
    check: str,
    threshold: str,
    versions: tuple[str, str],
) -> Chart:
    stable = [_number((s.evidence.get("stable_stats") or {}).get(stat), scale) for s in measured]
    canary = [_number((s.evidence.get("canary_stats") or {}).get(stat), scale) for s in measured]
    limit = None
    for step in reversed(measured):  # the newest window that says its limit
        slo = (step.evidence.get("slo_checks") or {}).get(check) or {}
        limit = _number(slo.get("limit"), scale)
        if limit is None:
            limit = _number((step.evidence.get("thresholds") or {}).get(threshold), scale)
        if limit is not None:
            break
    return Chart(
        key,
        f"{title}: canary {versions[1]} against stable {versions[0]}",
        unit,
        y_label,
        windows,
        [
            Series(f"stable {versions[0]}", "stable", stable),
            Series(f"canary {versions[1]}", "canary", canary),
        ],
        limit,
        "SLO limit" if limit is not None else "",
    )


def _drift(windows: list[Window], measured: list[ReleaseStep], canary: str) -> Chart | None:
    drift = [s.evidence.get("drift") or {} for s in measured]
    psi = [_number(d.get("psi_max")) for d in drift]
    js = [_number(d.get("js_max")) for d in drift]
    if all(v is None for v in psi + js):
        return None  # never judged: no baseline profile, no live counts
    series = []
    if any(v is not None for v in psi):
        series.append(Series(f"canary {canary}, largest PSI", "canary", psi))
    if any(v is not None for v in js):
        series.append(Series(f"canary {canary}, largest JS distance", "canary-js", js))
    limit = None
    for d in reversed(drift):
        limit = _number((d.get("thresholds") or {}).get("alert"))
        if limit is not None:
            break
    return Chart(
        "chart-drift",
        f"Drift: canary {canary} against its baseline profile",
        "",
        "Drift (PSI, JS distance)",
        windows,
        series,
        limit,
        "PSI alert limit" if limit is not None else "",
    )
