"""Review outcomes as metrics: the series at the control plane's `/metrics` (per deployment and
version, open and SLA-breached items per deployment), absent rather than 0 where nothing is
known, one query per scrape; and the "Human review" tiles of the deployment's monitoring page
(review, override and appeal rates per version) with a query count that does not grow."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from prometheus_client.parser import text_string_to_metric_families

from core import clock
from monitoring.api.exporter import exposition
from reviews.metrics import ReviewCollector
from reviews.models import Decision
from tests.monitoring_pages.conftest import demo_deployment, make_environment
from tests.monitoring_pages.test_pages import scraped
from tests.reviews.test_outcomes import POLICY, items, review_item, reviewed_deployment
from tests.support.pages import html_of

pytestmark = pytest.mark.django_db


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition by (name, sorted labels), as Prometheus would parse it."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return samples(exposition()[0].decode())


# /metrics -------------------------------------------------------------------------------------


def test_it_exports_counts_per_deployment_and_version(team):
    deployment = reviewed_deployment(team)
    items(deployment, 1, 3, decision=Decision.CONFIRM)
    review_item(deployment, 1, decision=Decision.OVERRIDE)
    review_item(deployment, 1, decision=Decision.OVERRIDE, appealed=True)  # open again, level 2
    items(deployment, 2, 2, track="canary")  # pending

    found = scrape()

    v1 = labels(deployment="loans", environment="production", model="loans", version="1")
    v2 = labels(deployment="loans", environment="production", model="loans", version="2")
    assert found[("modelplane_review_items_total", v1)] == 5
    assert found[("modelplane_review_decided_total", v1)] == 5
    assert found[("modelplane_review_overridden_total", v1)] == 2
    assert found[("modelplane_review_appealed_total", v1)] == 1
    assert found[("modelplane_review_items_total", v2)] == 2
    assert found[("modelplane_review_decided_total", v2)] == 0
    place = labels(deployment="loans", environment="production")
    assert found[("modelplane_review_open_items", place)] == 3
    assert found[("modelplane_review_sla_breached_open_items", place)] == 0


def test_it_counts_open_items_past_their_deadline_as_breached(team):
    deployment = reviewed_deployment(team)
    past = clock.now() - timedelta(minutes=1)
    items(deployment, 1, 2, sla_deadline=past)
    review_item(deployment, 1)  # within its SLA
    review_item(deployment, 1, decision=Decision.CONFIRM, sla_deadline=past)  # decided: not open

    found = scrape()

    place = labels(deployment="loans", environment="production")
    assert found[("modelplane_review_open_items", place)] == 3
    assert found[("modelplane_review_sla_breached_open_items", place)] == 2


def test_a_deployment_without_items_has_no_series(team):
    reviewed_deployment(team)
    other = reviewed_deployment(team, name="cards")
    review_item(other, 1)

    names = {
        dict(key[1]).get("deployment") for key in scrape() if key[0].startswith("modelplane_review")
    }

    assert names == {"cards"}


def test_a_scrape_takes_one_query_whatever_the_number_of_items(team):
    deployment = reviewed_deployment(team)
    review_item(deployment, 1)

    def measured() -> int:
        with CaptureQueriesContext(connection) as queries:
            list(ReviewCollector().collect())
        return len(queries)

    with_one = measured()
    for name in ("cards", "savings", "mortgages"):
        other = reviewed_deployment(team, name=name)
        for version in (1, 2):
            items(other, version, 10, decision=Decision.OVERRIDE)
            review_item(other, version, decision=Decision.CONFIRM, appealed=True)
    assert measured() == with_one == 1


def test_the_metrics_endpoint_serves_the_review_series(team, client):
    deployment = reviewed_deployment(team)
    review_item(deployment, 1, decision=Decision.OVERRIDE)

    response = client.get("/metrics")  # the test client is a loopback client

    assert response.status_code == 200
    body = response.content.decode()
    assert (
        'modelplane_review_overridden_total{deployment="loans",environment="production",'
        'model="loans",version="1"} 1.0'
    ) in body
    assert "# TYPE modelplane_release" in body  # monitoring's own series are still there


def test_the_exporter_exports_only_the_collectors_settings_name(team, settings):
    deployment = reviewed_deployment(team)
    review_item(deployment, 1)
    settings.METRICS_EXTRA_COLLECTORS = []

    assert not [key for key in scrape() if key[0].startswith("modelplane_review")]


# The monitoring page's tiles ------------------------------------------------------------------


@pytest.fixture
def local_env(db: Any) -> Any:
    return make_environment("demo", "local")


def reviewed_demo(team: Any, env: Any, **config: Any) -> Any:
    """The demo model on the local source, v1 stable, with 100 requests scraped just now."""
    deployment = demo_deployment(team, env, {}, model_name="loans", **config)
    scraped("loans", 100, 0)
    return deployment


def test_the_monitoring_page_shows_review_override_and_appeal_rates(browser_for, team, local_env):
    deployment = reviewed_demo(team, local_env, review_policy=POLICY)
    items(deployment, 1, 3, decision=Decision.CONFIRM)
    review_item(deployment, 1, decision=Decision.OVERRIDE)
    review_item(deployment, 1, decision=Decision.CONFIRM, appealed=True)
    # Before the window: counts in the override rate, not in the review rate.
    review_item(
        deployment, 1, decision=Decision.CONFIRM, created_at=clock.now() - timedelta(days=2)
    )

    response = browser_for("viewer").get(f"/deployments/{deployment.pk}/monitoring/")

    assert response.status_code == 200
    (group,) = response.context["reviews"]
    assert (group.track, group.version) == ("stable", 1)
    tiles = {tile.key: tile for tile in group.tiles}
    assert tiles["override_rate"].text == "16.7%"
    assert tiles["override_rate"].detail == "1 of 6 first-level decisions overrode the model"
    assert tiles["appeal_rate"].text == "16.7%"
    assert tiles["appeal_rate"].detail == "1 of 6 decisions appealed"
    requests = group.outcomes.predictions
    assert requests and requests > 0
    assert tiles["review_rate"].value == pytest.approx(5 / requests)
    assert tiles["review_rate"].detail.startswith("5 items sent for review from ")
    html = response.content.decode()
    assert "Human review" in html
    for text in ("Review rate", "Override rate", "Appeal rate", "16.7%"):
        assert text in html


def test_the_tiles_say_no_data_rather_than_zero(browser_for, team, local_env):
    deployment = demo_deployment(team, local_env, {}, model_name="quiet", review_policy=POLICY)

    response = browser_for("viewer").get(f"/deployments/{deployment.pk}/monitoring/")

    (group,) = response.context["reviews"]
    tiles = {tile.key: tile for tile in group.tiles}
    assert all(tile.text == "no data" for tile in tiles.values())
    assert tiles["override_rate"].detail == "no first-level decision yet (0 items)"
    assert tiles["review_rate"].detail == (
        "the metrics source gave no request count for the window"
    )


def test_without_a_policy_or_items_the_page_has_no_review_section(browser_for, team, local_env):
    deployment = reviewed_demo(team, local_env)

    html = html_of(browser_for("viewer"), f"/deployments/{deployment.pk}/monitoring/")

    assert "Human review" not in html


def test_items_left_from_an_earlier_policy_still_show(browser_for, team, local_env):
    deployment = reviewed_demo(team, local_env)
    review_item(deployment, 1, decision=Decision.OVERRIDE)

    html = html_of(browser_for("viewer"), f"/deployments/{deployment.pk}/monitoring/")

    assert "Human review" in html and "1 of 1 first-level decisions overrode the model" in html


def test_the_htmx_refresh_carries_the_tiles(browser_for, team, local_env):
    deployment = reviewed_demo(team, local_env, review_policy=POLICY)
    review_item(deployment, 1, decision=Decision.OVERRIDE)

    html = html_of(
        browser_for("viewer"),
        f"/deployments/{deployment.pk}/monitoring/?window=15m",
        HTTP_HX_REQUEST="true",
    )

    assert "<html" not in html and "Override rate" in html


def _page_queries(client: Any, url: str) -> tuple[int, int]:
    """(all queries, queries of the review items) of one page load."""
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    reviews = [q for q in queries.captured_queries if "reviews_reviewitem" in q["sql"]]
    return len(queries), len(reviews)


def test_the_page_reads_the_reviews_in_one_query_however_many_items(browser_for, team, local_env):
    client = browser_for("owner")
    plain = reviewed_demo(team, local_env)
    without_reviews = _page_queries(client, f"/deployments/{plain.pk}/monitoring/")
    reviewed = demo_deployment(team, local_env, {}, model_name="cards", review_policy=POLICY)
    url = f"/deployments/{reviewed.pk}/monitoring/"
    review_item(reviewed, 1)
    with_one = _page_queries(client, url)
    items(reviewed, 1, 30, decision=Decision.OVERRIDE)
    items(reviewed, 2, 20, decision=Decision.CONFIRM)
    review_item(reviewed, 1, decision=Decision.CONFIRM, appealed=True)

    assert _page_queries(client, url) == with_one == without_reviews
    assert with_one[1] == 1
