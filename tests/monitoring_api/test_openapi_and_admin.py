"""The monitoring endpoints are in the OpenAPI schema with their `window` choices and the 422 of
an unknown window; the admin shows the local scrape buffer without any way to change it."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from monitoring.models import MetricScrape
from monitoring.selectors import DEFAULT_WINDOW, WINDOWS


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("schema") / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    return yaml.safe_load(out.read_text())


@pytest.mark.parametrize("path", ["/api/v1/monitoring/", "/api/v1/deployments/{id}/health/"])
def test_each_endpoint_documents_its_window_and_errors(schema, path):
    operation = schema["paths"][path]["get"]
    (window,) = [p for p in operation["parameters"] if p["name"] == "window"]
    assert window["in"] == "query" and not window.get("required", False)
    assert set(window["schema"]["enum"]) == set(WINDOWS)
    assert window["schema"]["default"] == DEFAULT_WINDOW
    assert {"200", "401", "403", "404", "422"} <= set(operation["responses"])
    problem = operation["responses"]["422"]["content"]["application/problem+json"]
    assert problem["schema"]["$ref"].endswith("/Problem")
    assert set(schema["paths"][path]) == {"get"}


def test_a_tile_value_is_documented_as_nullable(schema):
    value = schema["components"]["schemas"]["Tile"]["properties"]["value"]
    assert value["nullable"] is True


@pytest.fixture
def admin_client(people) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(people["admin"])
    return client


@pytest.fixture
def scrape(db) -> MetricScrape:  # type: ignore[no-untyped-def]
    return MetricScrape.objects.create(
        model_name="scored",
        version=1,
        scraped_at=timezone.now() - timedelta(seconds=30),
        target_url="http://127.0.0.1:9/metrics",
        samples={"model_requests_total": [[{"code": "200"}, 10.0]]},
    )


def test_the_admin_lists_scrapes(admin_client, scrape):
    response = admin_client.get("/admin/monitoring/metricscrape/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "scored" in html and "http://127.0.0.1:9/metrics" in html


def test_the_admin_cannot_add_change_or_delete_a_scrape(admin_client, scrape):
    base = "/admin/monitoring/metricscrape/"
    assert admin_client.get(f"{base}add/").status_code == 403
    assert admin_client.post(f"{base}{scrape.pk}/change/", {"version": 2}).status_code == 403
    assert admin_client.post(f"{base}{scrape.pk}/delete/", {"post": "yes"}).status_code == 403
    scrape.refresh_from_db()
    assert scrape.version == 1
