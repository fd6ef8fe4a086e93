"""The control plane's own Prometheus metrics at `/metrics`: the numbers behind each recent
canary analysis (error rate, p95 latency, drift, cost per prediction, verdict), release counts
by state and rollbacks, so a dashboard can explain why a release failed.

A custom collector reads PostgreSQL at scrape time with a fixed number of queries, whatever the
number of releases (only the latest analysis of active or recently changed releases is exported).
It must never write, never export a number that the evidence does not hold (a missing value is an
absent sample, not 0), and never serve the data to a caller that `may_read_metrics` refuses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import HttpResponse
from django.urls import path
from django.utils import timezone
from django.utils.module_loading import import_string
from drf_spectacular.utils import extend_schema
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from deployments.models import ACTIVE_STATES, Release, ReleaseState, ReleaseStep, Rollback
from identity.permissions import can_read_platform_metrics

# Analyses of releases that are active, or changed within this window, are exported. Older ones
# stay in the release's evidence; a dashboard only needs what is current or just happened.
RECENT_RELEASES = timedelta(hours=24)
# A hard cap on exported releases keeps a scrape bounded even after a burst of releases.
MAX_EXPORTED_RELEASES = 500
VERDICTS = ("pass", "fail", "inconclusive")
ROLES = ("stable", "canary")
ANALYSIS_LABELS = ["deployment", "environment", "release", "version", "role"]
VERDICT_LABELS = ["deployment", "environment", "release", "version", "verdict"]
STEP_LABELS = ["deployment", "environment", "release", "version"]


class ControlPlaneCollector(Collector):
    """Reads the database at every scrape: three queries, independent of the number of
    releases (release states, rollbacks, and the latest analysis step per recent release)."""

    def __init__(self, now: Any = None) -> None:
        self._now = now

    def collect(self) -> Iterator[Any]:
        yield from self._release_states()
        yield self._rollbacks()
        yield from self._analyses()

    def _release_states(self) -> Iterator[Any]:
        counts = dict.fromkeys(ReleaseState.values, 0)
        for row in Release.objects.order_by().values("state").annotate(n=Count("id")):
            counts[row["state"]] = row["n"]
        family = GaugeMetricFamily(
            "modelplane_releases", "Releases by state (all time).", labels=["state"]
        )
        for state, n in sorted(counts.items()):
            family.add_metric([state], n)
        yield family

    def _rollbacks(self) -> CounterMetricFamily:
        family = CounterMetricFamily(
            "modelplane_rollbacks",
            "Rollbacks started, automatic (failed analysis or step) or by a person.",
            labels=["automatic"],
        )
        counts = {"true": 0, "false": 0}
        for row in Rollback.objects.order_by().values("automatic").annotate(n=Count("id")):
            counts["true" if row["automatic"] else "false"] += row["n"]
        for automatic, n in counts.items():
            family.add_metric([automatic], n)
        return family

    def _analyses(self) -> Iterator[Any]:
        families = {
            "error_rate": GaugeMetricFamily(
                "modelplane_analysis_error_rate",
                "Error rate (5xx / requests) over the window of the latest analysis.",
                labels=ANALYSIS_LABELS,
            ),
            "latency_p95": GaugeMetricFamily(
                "modelplane_analysis_latency_p95_seconds",
                "p95 latency over the window of the latest analysis.",
                labels=ANALYSIS_LABELS,
            ),
            "requests": GaugeMetricFamily(
                "modelplane_analysis_requests",
                "Requests served in the window of the latest analysis.",
                labels=ANALYSIS_LABELS,
            ),
            "cost_per_1000": GaugeMetricFamily(
                "modelplane_analysis_cost_per_1000_predictions",
                "Cost of 1,000 predictions at the whole traffic (see docs/analysis.md).",
                labels=ANALYSIS_LABELS,
            ),
            "psi_max": GaugeMetricFamily(
                "modelplane_analysis_drift_psi_max",
                "Largest PSI of a numeric feature or prediction against the baseline profile.",
                labels=ANALYSIS_LABELS,
            ),
            "js_max": GaugeMetricFamily(
                "modelplane_analysis_drift_js_max",
                "Largest Jensen-Shannon distance of a categorical feature or prediction.",
                labels=ANALYSIS_LABELS,
            ),
        }
        verdict = GaugeMetricFamily(
            "modelplane_analysis_verdict",
            "1 for the verdict of the latest analysis of a release, 0 for the others.",
            labels=VERDICT_LABELS,
        )
        weight = GaugeMetricFamily(
            "modelplane_analysis_canary_weight_percent",
            "Traffic weight of the canary when the latest analysis ran.",
            labels=STEP_LABELS,
        )
        timestamp = GaugeMetricFamily(
            "modelplane_analysis_timestamp_seconds",
            "When the latest analysis of a release was recorded (Unix time).",
            labels=STEP_LABELS,
        )
        for step in latest_analyses(self._now):
            evidence = step["evidence"] if isinstance(step["evidence"], Mapping) else {}
            base = [
                step["release__deployment__name"],
                step["release__deployment__environment__name"],
                str(step["release_id"]),
            ]
            canary_version = _version_of(evidence, "canary", step["release__version__number"])
            step_labels = [*base, canary_version]
            for name in VERDICTS:
                verdict.add_metric([*step_labels, name], 1.0 if step["outcome"] == name else 0.0)
            timestamp.add_metric(step_labels, step["created_at"].timestamp())
            _add(weight, step_labels, evidence.get("weight"))
            for role in ROLES:
                version = _version_of(evidence, role, None)
                if version is None:
                    continue
                labels = [*base, version, role]
                stats = evidence.get(f"{role}_stats") or {}
                _add(families["error_rate"], labels, stats.get("error_rate"))
                _add(families["latency_p95"], labels, stats.get("latency_p95"))
                _add(families["requests"], labels, stats.get("requests"))
                cost = (evidence.get("cost") or {}).get(role) or {}
                _add(families["cost_per_1000"], labels, cost.get("cost_per_1000_at_full_traffic"))
                if role == "canary":
                    drift = evidence.get("drift") or {}
                    _add(families["psi_max"], labels, drift.get("psi_max"))
                    _add(families["js_max"], labels, drift.get("js_max"))
        yield from families.values()
        yield verdict
        yield weight
        yield timestamp


def latest_analyses(now: Any = None) -> list[dict[str, Any]]:
    """The latest analysis step of every release that is active or changed recently, newest
    releases first, at most MAX_EXPORTED_RELEASES: one query."""
    since = (now or timezone.now()) - RECENT_RELEASES
    latest = Subquery(
        ReleaseStep.objects.filter(release=OuterRef("pk"), kind="analysis")
        .order_by("-id")
        .values("id")[:1]
    )
    step_ids = (
        Release.objects.filter(
            Q(state__in=ACTIVE_STATES) | Q(updated_at__gte=since) | Q(finished_at__gte=since)
        )
        .annotate(latest_analysis=latest)
        .filter(latest_analysis__isnull=False)
        .order_by("-id")
        .values("latest_analysis")[:MAX_EXPORTED_RELEASES]
    )
    return list(
        ReleaseStep.objects.filter(id__in=step_ids)
        .order_by("release_id")
        .values(
            "release_id",
            "outcome",
            "evidence",
            "created_at",
            "release__deployment__name",
            "release__deployment__environment__name",
            "release__version__number",
        )
    )


def _version_of(evidence: Mapping[str, Any], role: str, default: Any) -> str | None:
    side = evidence.get(role)
    version = side.get("version") if isinstance(side, Mapping) else None
    if version is None:
        version = default
    return None if version is None else str(version)


def _add(family: GaugeMetricFamily, labels: list[str], value: Any) -> None:
    """Only real numbers are exported: a missing value stays absent rather than reading as 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    family.add_metric(labels, float(value))


def extra_collectors() -> list[Collector]:
    """The collectors that higher layers add to /metrics (reviews' outcomes, ...): dotted paths
    to Collector classes taking no arguments, in settings.METRICS_EXTRA_COLLECTORS. Wired by
    settings because monitoring must never import the layers above it. Each keeps this module's
    rules: a fixed number of queries per scrape, no writes, absent rather than 0."""
    return [import_string(dotted)() for dotted in getattr(settings, "METRICS_EXTRA_COLLECTORS", ())]


def exposition(accept_header: str = "", now: Any = None) -> tuple[bytes, str]:
    """The metrics in the format the scraper asked for (OpenMetrics or text 0.0.4)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ControlPlaneCollector(now))
    for collector in extra_collectors():
        registry.register(collector)
    encoder, content_type = choose_encoder(accept_header)
    return encoder(registry), content_type


# Access -------------------------------------------------------------------------------------


def is_loopback_client(remote_addr: str, headers: Mapping[str, str]) -> bool:
    """A direct connection from this host. A request that came through a proxy (it carries a
    forwarding header) is not: a reverse proxy on this host would otherwise open the metrics to
    everyone it serves."""
    if any(name in headers for name in ("X-Forwarded-For", "Forwarded", "X-Real-IP")):
        return False
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def anonymous_metrics_allowed() -> bool:
    value = getattr(settings, "METRICS_ALLOW_ANONYMOUS", False)
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def may_read_metrics(principal: Any, *, loopback: bool) -> bool:
    """Who may read the control plane's metrics, which name every team's deployments: anyone
    from loopback or when METRICS_ALLOW_ANONYMOUS is on; otherwise platform staff (a staff or
    superuser session, never a token) or a token whose scopes grant at least the viewer role."""
    if loopback or anonymous_metrics_allowed():
        return True
    return can_read_platform_metrics(principal)


class CanReadMetrics(BasePermission):
    message = "Reading the control plane's metrics needs a staff session or a read token."

    def has_permission(self, request: Request, view: Any) -> bool:
        loopback = is_loopback_client(request.META.get("REMOTE_ADDR", ""), request.headers)
        return may_read_metrics(request.user, loopback=loopback)


class ExpositionNegotiation(BaseContentNegotiation):
    """Prometheus picks its own format from Accept (choose_encoder); DRF's renderers only render
    the problem documents of refused requests, so negotiation never answers 406."""

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(
        self, request: Request, renderers: list[Any], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        return renderers[0], renderers[0].media_type


class MetricsView(APIView):
    """GET /metrics: the Prometheus exposition of `ControlPlaneCollector`."""

    permission_classes = [CanReadMetrics]
    content_negotiation_class = ExpositionNegotiation

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        body, content_type = exposition(request.headers.get("Accept", ""))
        response = HttpResponse(body, content_type=content_type)
        response["Cache-Control"] = "no-store"
        return response


metrics_view = MetricsView.as_view()

# Included by controlplane/urls.py as `path("metrics", include("monitoring.api.exporter"))`.
urlpatterns = [path("", metrics_view, name="metrics")]
