"""/api/v1/environments/: anyone signed in reads names and kinds; only platform admins create."""

from __future__ import annotations

import pytest

from deployments.models import Environment

URL = "/api/v1/environments/"


@pytest.mark.parametrize(
    "who", ["owner", "maintainer", "viewer", "outsider", "token:read", "token:write"]
)
def test_every_signed_in_principal_lists_environments(client_for, envs, who):
    response = client_for(who).get(URL)
    assert response.status_code == 200
    rows = {row["name"]: row for row in response.json()["results"]}
    assert set(rows) == {"staging", "production"}
    assert rows["production"]["staging"] == "staging"
    assert rows["production"]["is_production"] is True
    assert rows["production"]["namespace"] == "models"
    assert rows["production"]["runtime_kind"] == "kubernetes"


def test_it_never_shows_runtime_config_or_the_metrics_url(client_for, envs):
    body = client_for("viewer").get(URL + "production/").json()
    assert "runtime_config" not in body and "metrics_url" not in body
    assert "127.0.0.1:9" not in str(body)


def test_it_requires_authentication(client_for, envs):
    response = client_for("anonymous").get(URL)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_an_unknown_environment_is_404(client_for, envs):
    assert client_for("viewer").get(URL + "nowhere/").status_code == 404


def test_a_platform_admin_creates_an_environment(client_for, envs):
    body = {
        "name": "canary-lab",
        "runtime_kind": "kubernetes",
        "runtime_config": {"api_url": "http://127.0.0.1:9", "namespace": "lab"},
        "staging": "staging",
        "vcpu_hour_price": "0.05",
    }
    response = client_for("admin").post(URL, body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["staging"] == "staging"
    assert response.json()["namespace"] == "lab"
    assert Environment.objects.get(name="canary-lab").staging.name == "staging"


@pytest.mark.parametrize("who", ["owner", "token:write"])
def test_team_owners_and_tokens_cannot_create_environments(client_for, envs, who):
    body = {"name": "rogue", "runtime_kind": "kubernetes"}
    assert client_for(who).post(URL, body, format="json").status_code == 403
    assert not Environment.objects.filter(name="rogue").exists()


def test_a_bad_runtime_kind_names_the_field(client_for, envs):
    response = client_for("admin").post(URL, {"name": "x", "runtime_kind": "vm"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "runtime_kind"


def test_credentials_in_runtime_config_are_refused_and_nothing_is_written(client_for, envs):
    body = {"name": "leaky", "runtime_kind": "kubernetes", "runtime_config": {"token": "abc"}}
    response = client_for("admin").post(URL, body, format="json")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "runtime_config.token"
    assert not Environment.objects.filter(name="leaky").exists()


def test_a_second_environment_with_the_same_name_conflicts(client_for, envs):
    body = {"name": "staging", "runtime_kind": "local"}
    response = client_for("admin").post(URL, body, format="json")
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "name"
