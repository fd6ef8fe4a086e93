"""Every main page of the portal at 1280 px in a real browser, with data on it: axe-core finds no
serious or critical WCAG 2.0/2.1 A/AA violation, and a screenshot of each is kept under
var/screenshots/ (the monitoring overview's also as docs/screenshots/monitoring.png, the
README's picture). The journeys check the pages they pass through as well, in the states they
leave them in, and the on-call view at phone width. And the models list filters as one types."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from deployments.models import Deployment, Rollback
from monitoring.sources.local import LocalScrapeSource, ScrapeTarget
from tests.browser.browsing import check_page, screenshot
from tests.deployments_api.conftest import (  # noqa: F401 (fixtures)
    deployment,
    envs,
    model,
    production,
    versions,
)
from tests.factories import (
    alert_of,
    give_duty,
    incident_of,
    oncall_schedule_of,
    queued_item_of,
    release_of,
    review_deployment_of,
)
from tests.monitoring_pages.conftest import demo_deployment, make_environment

pytestmark = pytest.mark.slow

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
SCRAPES = 60  # one a minute over the last hour


def exposition(name: str, version: int, requests: int, failed: int, latency_s: float) -> str:
    """The serving metrics contract (model_*) after `requests` requests, `failed` of them
    5xx, their durations spread around `latency_s` (as serving.metrics exposes them)."""
    labels = f'model="{name}",version="{version}"'
    lines = [
        "# TYPE model_requests_total counter",
        f'model_requests_total{{{labels},endpoint="predict",code="200"}} {requests - failed}',
        f'model_requests_total{{{labels},endpoint="predict",code="500"}} {failed}',
        "# TYPE model_predictions_total counter",
        f"model_predictions_total{{{labels}}} {requests - failed}",
        "# TYPE model_request_duration_seconds histogram",
    ]
    for le in BUCKETS:  # a log-normal spread: half the requests under latency_s
        z = math.log(le / latency_s) / 0.6
        share = 0.5 * (1 + math.erf(z / math.sqrt(2)))
        lines.append(
            f'model_request_duration_seconds_bucket{{{labels},endpoint="predict",le="{le}"}} '
            f"{round(requests * share)}"
        )
    series = f'{{{labels},endpoint="predict"}}'
    lines += [
        f'model_request_duration_seconds_bucket{{{labels},endpoint="predict",le="+Inf"}} '
        f"{requests}",
        f"model_request_duration_seconds_count{series} {requests}",
        f"model_request_duration_seconds_sum{series} {requests * latency_s}",
    ]
    return "\n".join(lines) + "\n"


def scraped(name: str, version: int, *, rate: float, error_share: float, latency_s: float) -> None:
    """An hour of local scrapes of one version, as the demo's scrape task stores them: traffic
    at `rate` requests/s rising and falling through the hour."""
    source = LocalScrapeSource()
    target = ScrapeTarget(name, version, "http://127.0.0.1:9/metrics")
    now = timezone.now()
    requests = failed = 0.0
    for i in range(SCRAPES):
        swing = 1 + 0.4 * math.sin(i / 6)
        requests += 60 * rate * swing
        failed += 60 * rate * swing * error_share
        text = exposition(name, version, round(requests), round(failed), latency_s)
        source.ingest(target, text, now - timedelta(minutes=SCRAPES - 1 - i, seconds=5))


@pytest.fixture
def portal(team: Any, people: Any, deployment: Deployment, versions: Any) -> dict[str, Any]:  # noqa: F811
    """A portal with something on every page: fraud-detector in production (v2 stable, a
    release of v3 awaiting approval, a rollback), three monitored deployments of the demo's
    local metrics, an alert with its incident, an on-call rotation, a review item."""
    owner = people["owner"]
    give_duty(owner, team, is_reviewer=True, is_approver=True)
    release = release_of(deployment, versions[3], people["maintainer"])
    Rollback.objects.create(
        deployment=deployment,
        to_version=versions[1],
        from_version=versions[2],
        actor_label="maintainer",
        state="done",
        reason="p95 regression",
    )
    demo = make_environment("demo", "local")
    healthy = demo_deployment(team, demo, {}, model_name="breast-cancer", canary_of=owner)
    scraped("breast-cancer", 1, rate=12, error_share=0.0008, latency_s=0.012)
    scraped("breast-cancer", 2, rate=4, error_share=0.001, latency_s=0.015)
    demo_deployment(team, demo, {}, model_name="churn-predictor")
    scraped("churn-predictor", 1, rate=6, error_share=0.09, latency_s=0.06)
    demo_deployment(team, demo, {}, model_name="wine-quality")  # no traffic yet: no data
    alert = alert_of(
        team,
        deployment=deployment,
        rule="slo_burn_rate",
        title="Error budget burning fast on fraud-detector",
        assignee=owner,
        labels={"severity": "critical"},
        evidence={"burn_rate": {"1h": 15.2, "5m": 16.0}, "threshold": 14.4},
    )
    incident = incident_of(team, alert=alert)
    schedule = oncall_schedule_of(team, [owner, people["maintainer"]])
    item = queued_item_of(review_deployment_of(team), reason="low_confidence")
    return {
        "deployment": deployment,
        "release": release,
        "healthy": healthy,
        "alert": alert,
        "incident": incident,
        "schedule": schedule,
        "item": item,
        "model": deployment.model,
    }


def test_every_main_page_passes_axe_at_desktop_width(
    portal: dict[str, Any], signed_in: Any, live_server: Any, team: Any
) -> None:
    served, registered = portal["deployment"], portal["model"]
    pages = [
        ("home", reverse("home")),
        ("models", reverse("models")),
        ("model", reverse("model-detail", args=[registered.name])),
        ("version", reverse("version-detail", args=[registered.name, 3])),
        ("deployments", reverse("deployments")),
        ("deployment", reverse("deployment-detail", args=[served.pk])),
        ("rollback-confirm", reverse("deployment-rollback", args=[served.pk])),
        ("releases", reverse("releases")),
        ("release", reverse("release-detail", args=[portal["release"].pk])),
        ("monitoring", reverse("monitoring")),
        ("deployment-monitoring", reverse("deployment-monitoring", args=[portal["healthy"].pk])),
        ("alerts", reverse("alerts")),
        ("alert", reverse("alert-detail", args=[portal["alert"].pk])),
        ("incidents", reverse("incidents")),
        ("incident", reverse("incident-detail", args=[portal["incident"].pk])),
        ("schedules", reverse("schedules")),
        ("schedule", reverse("schedule-detail", args=[portal["schedule"].pk])),
        ("reviews", reverse("reviews")),
        ("review-item", reverse("review-detail", args=[portal["item"].ref])),
        ("teams", reverse("teams")),
        ("team", reverse("team-detail", args=[team.slug])),
        ("audit-log", reverse("audit-log")),
    ]
    page = signed_in("owner")
    problems = []  # every page is checked, and the failure lists them all
    for name, path in pages:
        response = page.goto(live_server.url + path)
        assert response is not None and response.status == 200, (name, path)
        try:
            check_page(page, name)
        except pytest.fail.Exception as failure:
            problems.append(str(failure))
        if name == "monitoring":
            screenshot(page, "monitoring", docs="monitoring")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def test_a_person_filters_the_models_live_and_opens_one(
    portal: dict[str, Any], signed_in: Any
) -> None:
    from playwright.sync_api import expect

    page = signed_in("viewer")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Models").click()
    expect(page.get_by_role("heading", name="Models", level=1)).to_be_visible()
    results = page.get_by_role("main")
    expect(results.get_by_role("link", name="fraud-detector", exact=True)).to_be_visible()

    page.get_by_role("search", name="Filter models").get_by_label("Search").fill("churn")
    # Filtered as typed (HTMX), without pressing a button; the URL keeps the filter to share.
    expect(results.get_by_role("link", name="fraud-detector", exact=True)).to_have_count(0)
    expect(page).to_have_url(re.compile(r"[?&]q=churn"))
    results.get_by_role("link", name="churn-predictor", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("churn-predictor")
