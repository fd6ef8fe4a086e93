"""GET /api/v1/deployments/{id}/health/: one deployment's health, notes, deployment-wide tiles
and every tile of every track, as /deployments/{id}/monitoring/ shows them; the window, who may
read it, and a query count that does not grow with the data."""

from __future__ import annotations

import pytest

from deployments.models import Deployment, Rollback
from tests.factories import environment_of
from tests.monitoring_api.conftest import serving
from tests.monitoring_pages.test_pages import scraped
from tests.support.query_counts import LARGE, SMALL, check_ratchet, count_queries

ENDPOINT = "GET /api/v1/deployments/{id}/health/"
TRACK_TILES = [
    "request_rate",
    "error_rate",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "rejection_rate",
    "drift",
    "cost_hour",
    "cost_per_1000",
    "error_budget",
    "burn",
]
TRAFFIC_TILES = TRACK_TILES[:6]


def url_of(deployment: Deployment) -> str:
    return f"/api/v1/deployments/{deployment.pk}/health/"


def test_it_shows_every_tile_per_track(client_for, team, people, local_env):
    deployment = serving(team, local_env, "scored", canary_by=people["owner"])
    scraped("scored", 95, 5)
    Rollback.objects.create(
        deployment=deployment,
        to_version=deployment.stable_version,
        actor_label="alice",
        state="done",
        reason="p95 regression",
    )
    response = client_for("viewer").get(url_of(deployment), {"window": "15m"})
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == deployment.pk and body["name"] == "scored"
    assert body["window"] == "15m" and body["window_label"] == "15m"
    assert body["health"] == "critical"  # 5% errors against the 1% SLO
    assert body["reasons"] and isinstance(body["notes"], list)
    assert [tile["key"] for tile in body["tiles"]] == ["cost_total", "budget", "rollback"]
    rollback = body["tiles"][2]
    assert rollback["text"] == "to v1" and "by alice at" in rollback["detail"]
    stable, canary = body["tracks"]
    assert (stable["track"], stable["version"]) == ("stable", 1)
    assert (canary["track"], canary["version"]) == ("canary", 2)
    for track in (stable, canary):
        assert [tile["key"] for tile in track["tiles"]] == TRACK_TILES
        for tile in track["tiles"]:
            assert set(tile) == {"key", "label", "text", "status", "value", "detail", "spark"}
    error_rate = stable["tiles"][1]
    assert error_rate["value"] == pytest.approx(0.05) and error_rate["status"] == "fail"
    assert error_rate["spark"] and all(p is None or p >= 0 for p in error_rate["spark"])
    # Nothing scraped the canary: its numbers are unknown, not 0.
    assert all(tile["value"] is None for tile in canary["tiles"][:6])


def test_without_a_metrics_source_every_number_is_null(client_for, team, db):
    deployment = serving(team, environment_of("bare", metrics_kind="none"), "unmeasured")
    body = client_for("viewer").get(url_of(deployment)).json()
    assert body["health"] == "no_data"
    assert any("bare has no metrics source" in note for note in body["notes"])
    (track,) = body["tracks"]
    tiles = {tile["key"]: tile for tile in track["tiles"]}
    for key in TRAFFIC_TILES:
        assert tiles[key]["value"] is None and tiles[key]["status"] == "no_data", key
        assert tiles[key]["text"] == "no data" and tiles[key]["spark"] == [], key
    assert tiles["cost_hour"]["value"] > 0  # priced from the config, not from metrics


def test_it_rejects_an_unknown_window(client_for, team, local_env):
    deployment = serving(team, local_env, "windowed")
    response = client_for("viewer").get(url_of(deployment), {"window": "forever"})
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert [error["field"] for error in response.json()["errors"]] == ["window"]


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_it_rejects_writes(client_for, team, local_env, method):
    deployment = serving(team, local_env, "read-only")
    response = getattr(client_for("owner"), method)(url_of(deployment))
    assert response.status_code == 405


def test_another_teams_deployment_is_not_found(client_for, team, local_env):
    deployment = serving(team, local_env, "hidden")
    response = client_for("outsider").get(url_of(deployment))
    assert response.status_code == 404
    assert "hidden" not in response.content.decode()


def test_a_deployment_that_does_not_exist_is_not_found(client_for, db, people):
    assert client_for("viewer").get("/api/v1/deployments/999999/health/").status_code == 404


def test_a_read_token_of_the_team_reads_it(client_for, team, local_env):
    deployment = serving(team, local_env, "read-by-ci")
    response = client_for("token:read").get(url_of(deployment))
    assert response.status_code == 200
    assert response.json()["name"] == "read-by-ci"


def test_it_refuses_anonymous(client_for, team, local_env):
    deployment = serving(team, local_env, "private-model")
    assert client_for("anonymous").get(url_of(deployment)).status_code == 401


def _grow(team, environment, n: int) -> Deployment:  # type: ignore[no-untyped-def]
    """`n` scraped deployments in the environment, and `n` rollbacks of the first one."""
    for i in range(Deployment.objects.filter(environment=environment).count(), n):
        serving(team, environment, f"model-{i:03d}")
        scraped(f"model-{i:03d}", 10, i % 2)
    first = Deployment.objects.filter(environment=environment).order_by("pk").first()
    for _ in range(first.rollbacks.count(), n):
        Rollback.objects.create(deployment=first, to_version=first.stable_version, actor_label="a")
    return first


def test_the_query_count_is_flat_and_within_the_ratchet(client_for, team, local_env):
    client = client_for("owner")
    url = url_of(_grow(team, local_env, SMALL))
    count_queries(client, url)  # warm per-process caches (content types), as a server has them
    small = count_queries(client, url)
    _grow(team, local_env, LARGE)
    large = count_queries(client, url)
    check_ratchet(ENDPOINT, small, large)
