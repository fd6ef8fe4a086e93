"""The monitoring pages: the overview sorted worst-first, one deployment's tiles, the window
selector, HTMX refresh, permissions, "no data" with the source down, and a bounded number of SQL
queries and Prometheus round trips whatever the number of deployments (1 vs 20)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deployments.models import Deployment, Rollback
from frontend import monitoring_views
from monitoring.sources.local import LocalScrapeSource, ScrapeTarget
from tests.monitoring_pages.conftest import demo_deployment, make_environment
from tests.support.pages import html_of
from tests.support.prometheus import free_port

SMALL, LARGE = 1, 20
# Upper bounds for one page load, whatever the number of deployments (flatness is asserted
# separately): session, user, memberships, the deployment list and its two prefetches, the
# request's savepoints, the overview's open alerts (one query for every deployment); with the
# local source, one statement per batch call (11).
MAX_SQL_PROMETHEUS = 9
MAX_SQL_LOCAL = 20
# One environment: retention lookup 1, window stats 2 (instant + range), sparkline series 3,
# feature counts 1, burn-rate windows up to 5, SLO-window counts 2, business KPIs 1.
MAX_PROMETHEUS_ROUND_TRIPS = 15


def exposition(model: str, version: int, ok: int, failed: int) -> str:
    """Serving metrics as the service would expose them after `ok` + `failed` requests."""
    labels = f'model="{model}",version="{version}"'
    total = ok + failed
    return (
        "# TYPE model_requests_total counter\n"
        f'model_requests_total{{{labels},endpoint="predict",code="200"}} {ok}\n'
        f'model_requests_total{{{labels},endpoint="predict",code="500"}} {failed}\n'
        "# TYPE model_predictions_total counter\n"
        f"model_predictions_total{{{labels}}} {ok}\n"
        "# TYPE model_request_duration_seconds histogram\n"
        f'model_request_duration_seconds_bucket{{{labels},endpoint="predict",le="0.01"}} {total}\n'
        f'model_request_duration_seconds_bucket{{{labels},endpoint="predict",le="+Inf"}} {total}\n'
        f'model_request_duration_seconds_count{{{labels},endpoint="predict"}} {total}\n'
        f'model_request_duration_seconds_sum{{{labels},endpoint="predict"}} {total * 0.004}\n'
    )


def scraped(model: str, ok: int, failed: int, scrapes: int = 6) -> None:
    """Local scrapes of v1 of `model` every 30 s over the last minutes, the traffic spread
    evenly between them."""
    source = LocalScrapeSource()
    target = ScrapeTarget(model, 1, "http://127.0.0.1:9/metrics")
    now = timezone.now()
    for i in range(scrapes):
        share = i / (scrapes - 1)
        text = exposition(model, 1, round(ok * share), round(failed * share))
        source.ingest(target, text, now - timedelta(seconds=10 + 30 * (scrapes - 1 - i)))


@pytest.fixture
def local_env(db):
    return make_environment("demo", "local")


def test_overview_lists_deployments_worst_first(browser_for, team, local_env):
    for name, ok, failed in (("healthy-one", 100, 0), ("failing-one", 50, 50)):
        demo_deployment(team, local_env, {}, model_name=name)
        scraped(name, ok, failed)
    demo_deployment(team, local_env, {}, model_name="silent-one")
    response = browser_for("viewer").get("/monitoring/")
    assert response.status_code == 200
    html = response.content.decode()
    positions = [
        html.index(f">{name}</a>") for name in ("failing-one", "healthy-one", "silent-one")
    ]
    assert positions == sorted(positions)
    assert "1 failing" in html and "1 healthy" in html and "1 no data" in html
    assert 'hx-trigger="every 10s"' in html
    assert 'aria-current="page">Monitoring</a>' in html
    assert '<option value="1h" selected>' in html  # the default window, shown as chosen


def test_overview_ranks_every_deployment_and_shows_a_page_of_them(
    browser_for, team, local_env, monkeypatch
):
    monkeypatch.setattr(monitoring_views, "OVERVIEW_PAGE_SIZE", 2)
    for name, ok, failed in (("healthy-one", 100, 0), ("failing-one", 50, 50)):
        demo_deployment(team, local_env, {}, model_name=name)
        scraped(name, ok, failed)
    demo_deployment(team, local_env, {}, model_name="silent-one")
    client = browser_for("viewer")
    first = html_of(client, "/monitoring/")
    assert ">failing-one</a>" in first and ">healthy-one</a>" in first
    assert ">silent-one</a>" not in first and "Page 1 of 2" in first
    assert "1 failing" in first and "1 no data" in first  # counted over every deployment
    second = html_of(client, "/monitoring/?window=1h&page=2")
    assert ">silent-one</a>" in second and ">failing-one</a>" not in second
    assert 'hx-get="/monitoring/?window=1h&amp;page=2"' in second  # the refresh keeps the page


def test_overview_shows_only_visible_deployments(browser_for, team, local_env):
    demo_deployment(team, local_env, {}, model_name="private-model")
    assert "private-model" not in html_of(browser_for("outsider"), "/monitoring/")
    assert "private-model" in html_of(browser_for("viewer"), "/monitoring/")


def test_deployment_page_shows_every_tile_per_track(browser_for, team, people, local_env):
    deployment = demo_deployment(
        team, local_env, {}, model_name="scored", canary_of=people["owner"]
    )
    scraped("scored", 95, 5)
    Rollback.objects.create(
        deployment=deployment,
        to_version=deployment.stable_version,
        actor_label="alice",
        state="done",
        reason="p95 regression",
    )
    response = browser_for("viewer").get(f"/deployments/{deployment.pk}/monitoring/?window=15m")
    assert response.status_code == 200
    html = response.content.decode()
    for label in (
        "Request rate",
        "Error rate",
        "Latency p50",
        "Latency p95",
        "Latency p99",
        "Input rejections",
        "Drift",
        "Cost per hour",
        "Cost per 1,000 predictions",
        "Error budget",
        "Burn rate",
        "Monthly budget",
        "Last rollback",
    ):
        assert f'<span class="mon-label">{label}</span>' in html, label
    assert "Stable <small" in html and "Canary <small" in html
    assert "5.00%" in html  # 5 of 100 failed
    assert "by alice at" in html and "to v1" in html
    assert '<svg class="sparkline"' in html
    assert "Last 15m" in html


def test_deployment_page_links_from_the_deployment(browser_for, team, local_env):
    deployment = demo_deployment(team, local_env, {}, model_name="linked")
    html = html_of(browser_for("viewer"), f"/deployments/{deployment.pk}/")
    assert f'href="/deployments/{deployment.pk}/monitoring/"' in html


def test_htmx_refresh_gets_only_the_live_part(browser_for, team, local_env):
    deployment = demo_deployment(team, local_env, {}, model_name="refreshed")
    client = browser_for("viewer")
    for url in ("/monitoring/?window=6h", f"/deployments/{deployment.pk}/monitoring/?window=6h"):
        response = client.get(url, HTTP_HX_REQUEST="true")
        html = response.content.decode()
        assert response.status_code == 200
        assert "<html" not in html
        assert html.lstrip().startswith('<div id="monitoring-live"')
        assert "window=6h" in html
        assert response["Vary"] and "HX-Request" in response["Vary"]


def test_an_unknown_window_is_a_400_that_still_renders(browser_for, db, people):
    response = browser_for("viewer").get("/monitoring/?window=2d")
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


def test_it_rejects_post(browser_for, db, people):
    assert browser_for("viewer").post("/monitoring/").status_code == 405


def test_anonymous_is_sent_to_login(db):
    response = Client().get("/monitoring/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_another_teams_deployment_is_not_found(browser_for, team, local_env):
    deployment = demo_deployment(team, local_env, {}, model_name="hidden")
    url = f"/deployments/{deployment.pk}/monitoring/"
    assert browser_for("outsider").get(url).status_code == 404


def test_with_the_source_down_every_tile_says_no_data(browser_for, team, people):
    down = make_environment("production", "prometheus", f"http://127.0.0.1:{free_port()}")
    deployment = demo_deployment(team, down, {}, model_name="dark", canary_of=people["owner"])
    client = browser_for("viewer")
    page = html_of(client, f"/deployments/{deployment.pk}/monitoring/")
    overview = client.get("/monitoring/")
    assert overview.status_code == 200
    for html in (page, overview.content.decode()):
        assert "No data" in html
        assert "req/s" not in html and "% left" not in html and "0%" not in html
    metric_tiles = page.count('class="mon-tile mon-no_data"')
    # Every metric tile of both tracks is "no data" (cost per hour and the rollback are not
    # metrics; the monthly budget has none set).
    assert metric_tiles >= 2 * 10


def test_without_a_metrics_source_the_page_says_so(browser_for, team):
    environment = make_environment("bare", "none")
    deployment = demo_deployment(team, environment, {}, model_name="unmeasured")
    html = html_of(browser_for("viewer"), f"/deployments/{deployment.pk}/monitoring/")
    assert "bare has no metrics source" in html


def _grow(team, environment, n: int) -> int:
    for i in range(Deployment.objects.filter(environment=environment).count(), n):
        demo_deployment(team, environment, {}, model_name=f"model-{i:03d}")
    return Deployment.objects.filter(environment=environment).order_by("pk").first().pk


def _measure(client, url: str, proxy=None) -> tuple[int, int]:
    if proxy is not None:
        proxy.reset()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries), proxy.total if proxy is not None else 0


def test_pages_take_flat_sql_and_prometheus_round_trips(
    browser_for, team, people, prometheus_factory, counting_proxy
):
    prometheus = prometheus_factory([])
    proxy = counting_proxy(prometheus.url)
    environment = make_environment("production", "prometheus", proxy.url)
    client = browser_for("owner")
    first = _grow(team, environment, SMALL)
    small = {
        "overview": _measure(client, "/monitoring/", proxy),
        "deployment": _measure(client, f"/deployments/{first}/monitoring/", proxy),
    }
    _grow(team, environment, LARGE)
    large = {
        "overview": _measure(client, "/monitoring/", proxy),
        "deployment": _measure(client, f"/deployments/{first}/monitoring/", proxy),
    }
    assert small == large, f"{SMALL} deployment(s): {small}; {LARGE}: {large}"
    for page, (sql, round_trips) in large.items():
        assert sql <= MAX_SQL_PROMETHEUS, (page, sql)
        assert 0 < round_trips <= MAX_PROMETHEUS_ROUND_TRIPS, (page, round_trips)


def test_local_source_pages_take_flat_sql(browser_for, team, local_env):
    client = browser_for("owner")
    first = _grow(team, local_env, SMALL)
    scraped("model-000", 10, 0)
    small = [
        _measure(client, "/monitoring/"),
        _measure(client, f"/deployments/{first}/monitoring/"),
    ]
    _grow(team, local_env, LARGE)
    for i in range(1, LARGE):
        scraped(f"model-{i:03d}", 10, 1)
    large = [
        _measure(client, "/monitoring/"),
        _measure(client, f"/deployments/{first}/monitoring/"),
    ]
    assert small == large
    assert all(sql <= MAX_SQL_LOCAL for sql, _ in large), large
