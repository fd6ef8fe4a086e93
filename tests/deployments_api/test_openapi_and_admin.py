"""The deployments endpoints are in the OpenAPI schema (generated with no warnings), and the
admin shows deployments without offering any way to change them."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command
from django.test import Client


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("schema") / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    return yaml.safe_load(out.read_text())


def test_every_deployments_route_is_documented(schema):
    paths = set(schema["paths"])
    expected = {
        "/api/v1/environments/",
        "/api/v1/environments/{name}/",
        "/api/v1/deployments/",
        "/api/v1/deployments/{id}/",
        "/api/v1/deployments/{id}/configs/",
        "/api/v1/deployments/{id}/rollback/",
        "/api/v1/releases/",
        "/api/v1/releases/{id}/",
        *(
            f"/api/v1/releases/{{id}}/{verb}/"
            for verb in ("approve", "reject", "promote", "pause", "resume", "abort")
        ),
    }
    assert expected <= paths
    assert "202" in schema["paths"]["/api/v1/deployments/{id}/rollback/"]["post"]["responses"]
    release_post = schema["paths"]["/api/v1/releases/"]["post"]
    assert {"409", "422"} <= set(release_post["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in release_post["parameters"])


def test_the_admin_lists_releases_read_only(people, db):
    client = Client()
    client.force_login(people["admin"])
    assert client.get("/admin/deployments/release/").status_code == 200
    assert client.get("/admin/deployments/release/add/").status_code == 403
