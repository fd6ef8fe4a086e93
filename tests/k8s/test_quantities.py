"""Resource quantities: written in the canonical form kube-apiserver stores (checked against what
a real 1.36.2 server stored), saved and shown that way by the configuration, and refused with a
422 naming the field when the API server would refuse them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deployments.models import Deployment, DeploymentConfig, Environment
from deployments.runtime.k8s_objects import canonical_quantity, quantity_value, same_quantity
from tests.factories import RegisteredModelFactory, deployment_of, environments

REAL_SERVER = Path(__file__).resolve().parent / "data" / "real-apiserver-1.36"
URL = "/api/v1/deployments/"


def real_server_quantities() -> list[tuple[str, str]]:
    data = json.loads((REAL_SERVER / "quantities.json").read_text())
    return [
        (data["sent"][section][resource], data["stored"][section][resource])
        for section in ("requests", "limits")
        for resource in ("cpu", "memory")
    ]


@pytest.mark.parametrize(("sent", "stored"), real_server_quantities())
def test_quantities_are_written_as_the_real_server_stored_them(sent: str, stored: str) -> None:
    assert canonical_quantity(sent) == stored
    assert canonical_quantity(stored) == stored


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        # apimachinery's Quantity.String(): decimal SI in steps of 10^3 ...
        ("250m", "250m"),
        ("1500", "1500"),
        ("1000", "1k"),
        ("1.5k", "1500"),
        ("1000k", "1M"),
        ("1E", "1E"),
        (".5", "500m"),
        ("0.0001", "100u"),
        ("0.0000000001", "1n"),  # below 1n rounds up to 1n, never down to 0
        ("0m", "0"),
        # ... binary SI while the amount is a whole number of at least 1024 ...
        ("1.5Gi", "1536Mi"),
        ("1Ki", "1Ki"),
        ("0.5Ki", "512"),
        ("0.1Mi", "104857600m"),
        # ... and exponents stay exponents.
        ("1e3", "1e3"),
        ("1E3", "1e3"),
        ("1.5e3", "1500"),
        ("12e6", "12e6"),
    ],
)
def test_canonical_forms(given: str, canonical: str) -> None:
    assert canonical_quantity(given) == canonical
    assert quantity_value(canonical) == quantity_value(given)


@pytest.mark.parametrize(
    "text", ["lots", "1K", "1ki", "1_000", "NaN", " 1", "1e", ".", "", "1e3Mi"]
)
def test_what_the_api_server_cannot_parse_is_no_quantity(text: str) -> None:
    # The client's own parse_quantity takes some of these ("1K", "1_000", "NaN"); the server
    # does not.
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        canonical_quantity(text)


def test_amounts_compare_across_spellings() -> None:
    assert same_quantity("0.5", "500m")
    assert same_quantity("1024Mi", "1Gi")
    assert not same_quantity("1k", "1Ki")
    assert not same_quantity("lots", "500m")


# The configuration ----------------------------------------------------------------------------


@pytest.fixture
def deployment(team) -> Deployment:  # type: ignore[no-untyped-def]
    environments()
    model = RegisteredModelFactory(name="fraud-detector", team=team)
    return deployment_of(model, Environment.objects.get(name="production"))


def test_the_configuration_saves_and_shows_canonical_quantities(client_for, deployment):  # type: ignore[no-untyped-def]
    client = client_for("maintainer")
    sent = {"cpu_request": "0.5", "cpu_limit": "1000m", "memory_request": "0.5Gi"}
    response = client.patch(
        f"{URL}{deployment.pk}/", {**sent, "memory_limit": "1024Mi"}, format="json"
    )
    assert response.status_code == 200, response.json()
    shown = {k: response.json()["config"][k] for k in (*sent, "memory_limit")}
    expected = {"cpu_request": "500m", "cpu_limit": "1", "memory_request": "512Mi"}
    assert shown == {**expected, "memory_limit": "1Gi"}
    saved = DeploymentConfig.objects.get(deployment=deployment, revision=2)
    assert (saved.cpu_request, saved.cpu_limit) == ("500m", "1")
    assert (saved.memory_request, saved.memory_limit) == ("512Mi", "1Gi")
    history = client.get(f"{URL}{deployment.pk}/configs/").json()
    assert history[0]["cpu_request"] == "500m"


def test_a_revision_saved_before_canonical_forms_is_carried_over_canonically(
    client_for, deployment
):  # type: ignore[no-untyped-def]
    DeploymentConfig.objects.filter(pk=deployment.config_id).update(memory_request="0.5Gi")
    response = client_for("maintainer").patch(
        f"{URL}{deployment.pk}/", {"replicas": 3}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["config"]["memory_request"] == "512Mi"


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"cpu_request": "lots"}, "cpu_request", "Kubernetes quantity"),
        ({"memory_limit": "1GB"}, "memory_limit", "Kubernetes quantity"),
        ({"cpu_limit": "-1"}, "cpu_limit", "negative"),
        ({"memory_request": "500m"}, "memory_request", "whole number of bytes"),
        ({"cpu_request": "1.5", "cpu_limit": "1"}, "cpu_request", "must not exceed cpu_limit"),
        # Over the limit the previous revision set (cpu_limit "1" by default).
        ({"cpu_request": "2"}, "cpu_request", "must not exceed cpu_limit (1)"),
        ({"memory_limit": "256Mi"}, "memory_request", "must not exceed memory_limit (256Mi)"),
    ],
)
def test_a_quantity_the_api_server_would_refuse_is_a_422_naming_the_field(
    client_for, deployment, change, field, reason
):  # type: ignore[no-untyped-def]
    response = client_for("maintainer").patch(f"{URL}{deployment.pk}/", change, format="json")
    assert response.status_code == 422, response.json()
    error = response.json()["errors"][0]
    assert error["field"] == field
    assert reason in json.dumps(response.json())
    assert DeploymentConfig.objects.filter(deployment=deployment).count() == 1


def test_a_request_is_checked_against_the_limit_it_will_run_with(client_for, deployment):  # type: ignore[no-untyped-def]
    client = client_for("maintainer")
    assert (
        client.patch(f"{URL}{deployment.pk}/", {"cpu_limit": "4"}, format="json").status_code == 200
    )
    # Over the default limit (1), within the one the deployment has now (4).
    response = client.patch(f"{URL}{deployment.pk}/", {"cpu_request": "2"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["config"]["cpu_request"] == "2"


def test_a_new_deployment_is_checked_against_the_default_limit(client_for, deployment):  # type: ignore[no-untyped-def]
    body = {
        "model": "fraud-detector",
        "environment": "staging",
        "strategy": "canary",
        "strategy_params": {"steps": [20, 100], "analysis_interval_seconds": 120},
        "cpu_request": "2",
    }
    response = client_for("maintainer").post(URL, body, format="json")
    assert response.status_code == 422, response.json()
    assert response.json()["errors"][0]["field"] == "cpu_request"
    assert not Deployment.objects.filter(environment__name="staging").exists()
