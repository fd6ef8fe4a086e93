"""GET /api/v1/monitoring/: every deployment the caller may see, worst first, with the same
health, reasons and summary tiles as the /monitoring/ page; the window, who may read it, and a
query count that does not grow with the number of deployments."""

from __future__ import annotations

import pytest

from deployments.models import Deployment
from monitoring.health import SUMMARY_TILES
from tests.monitoring_api.conftest import serving
from tests.monitoring_pages.test_pages import scraped
from tests.support.query_counts import LARGE, SMALL, check_ratchet, count_queries

URL = "/api/v1/monitoring/"
ENDPOINT = f"GET {URL}"


def test_it_lists_deployments_worst_first(client_for, team, local_env):
    for name, ok, failed in (("healthy-one", 100, 0), ("failing-one", 50, 50)):
        serving(team, local_env, name)
        scraped(name, ok, failed)
    serving(team, local_env, "silent-one")
    response = client_for("viewer").get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["window"] == "1h"
    assert body["counts"] == {"critical": 1, "warning": 0, "healthy": 1, "no_data": 1}
    rows = body["deployments"]
    assert [row["name"] for row in rows] == ["failing-one", "healthy-one", "silent-one"]
    assert [row["health"] for row in rows] == ["critical", "healthy", "no_data"]
    failing = rows[0]
    assert failing["environment"] == "demo" and failing["model"] == "failing-one"
    assert failing["window_label"] == "1h" and failing["slo_window_label"]
    assert any("Error rate" in reason for reason in failing["reasons"])
    (track,) = failing["tracks"]
    assert track["track"] == "stable" and track["version"] == 1
    assert track["health"] == "critical" and track["reasons"]
    tiles = {tile["key"]: tile for tile in track["tiles"]}
    assert list(tiles) == list(SUMMARY_TILES)
    assert tiles["error_rate"]["value"] == pytest.approx(0.5)
    assert tiles["error_rate"]["status"] == "fail" and tiles["error_rate"]["text"] == "50.0%"
    assert tiles["request_rate"]["spark"], "the summary tiles carry their sparkline"


def test_a_missing_number_is_null_never_zero(client_for, team, local_env):
    serving(team, local_env, "silent-one")
    (row,) = client_for("viewer").get(URL).json()["deployments"]
    (track,) = row["tracks"]
    for tile in track["tiles"]:
        assert tile["value"] is None, tile
        assert tile["status"] == "no_data" and tile["text"] == "no data", tile


def test_it_takes_the_window(client_for, team, local_env):
    serving(team, local_env, "windowed")
    body = client_for("viewer").get(URL, {"window": "15m"}).json()
    assert body["window"] == "15m"
    assert body["deployments"][0]["window_label"] == "15m"


def test_it_rejects_an_unknown_window(client_for, db, people):
    response = client_for("viewer").get(URL, {"window": "forever"})
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert [error["field"] for error in response.json()["errors"]] == ["window"]


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_it_rejects_writes(client_for, db, people, method):
    response = getattr(client_for("owner"), method)(URL)
    assert response.status_code == 405


def test_an_outsider_sees_none_of_the_teams_deployments(client_for, team, local_env):
    serving(team, local_env, "private-model")
    body = client_for("outsider").get(URL).json()
    assert body["deployments"] == []
    assert body["counts"] == {"critical": 0, "warning": 0, "healthy": 0, "no_data": 0}


def test_a_read_token_of_the_team_reads_it(client_for, team, local_env):
    serving(team, local_env, "read-by-ci")
    response = client_for("token:read").get(URL)
    assert response.status_code == 200
    assert [row["name"] for row in response.json()["deployments"]] == ["read-by-ci"]


def test_it_refuses_anonymous(client_for, team, local_env):
    serving(team, local_env, "private-model")
    response = client_for("anonymous").get(URL)
    assert response.status_code == 401
    assert "private-model" not in response.content.decode()


def _grow(team, environment, n: int) -> None:  # type: ignore[no-untyped-def]
    for i in range(Deployment.objects.filter(environment=environment).count(), n):
        serving(team, environment, f"model-{i:03d}")
        scraped(f"model-{i:03d}", 10, i % 2)


def test_the_query_count_is_flat_and_within_the_ratchet(client_for, team, local_env):
    client = client_for("owner")
    _grow(team, local_env, SMALL)
    count_queries(client, URL)  # warm per-process caches (content types), as a server has them
    small = count_queries(client, URL)
    _grow(team, local_env, LARGE)
    large = count_queries(client, URL)
    check_ratchet(ENDPOINT, small, large)
