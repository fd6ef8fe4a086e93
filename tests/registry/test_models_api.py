"""/api/v1/models/: list, create, read, update — per role, and bad input."""

from __future__ import annotations

import pytest

from identity.models import AuditEvent
from registry.models import RegisteredModel
from tests.factories import RegisteredModelFactory

LIST = "/api/v1/models/"


@pytest.mark.parametrize(
    ("who", "visible"),
    [
        ("owner", True),
        ("maintainer", True),
        ("viewer", True),
        ("token:read", True),
        ("outsider", False),
        ("admin", True),
    ],
)
def test_it_lists_models_of_the_callers_team_only(client_for, model, foreign_model, who, visible):
    response = client_for(who).get(LIST)
    assert response.status_code == 200
    names = {m["name"] for m in response.json()["results"]}
    assert ("fraud-detector" in names) is visible
    assert ("ranker" in names) is (who in {"outsider", "admin"})


def test_it_requires_authentication(client_for, model):
    response = client_for("anonymous").get(LIST)
    assert response.status_code in {401, 403}
    assert response["Content-Type"] == "application/problem+json"


def test_it_filters_searches_and_orders(client_for, team):
    RegisteredModelFactory(team=team, name="churn", risk_tier="low", tags=["tabular"])
    RegisteredModelFactory(team=team, name="fraud", risk_tier="high", description="card fraud")
    client = client_for("viewer")
    assert [m["name"] for m in client.get(LIST, {"risk_tier": "high"}).json()["results"]] == [
        "fraud"
    ]
    assert [m["name"] for m in client.get(LIST, {"q": "card"}).json()["results"]] == ["fraud"]
    assert [m["name"] for m in client.get(LIST, {"tag": "tabular"}).json()["results"]] == ["churn"]
    ordered = client.get(LIST, {"ordering": "-name"}).json()["results"]
    assert [m["name"] for m in ordered] == ["fraud", "churn"]
    page = client.get(LIST, {"limit": 1}).json()
    assert page["count"] == 2 and len(page["results"]) == 1 and page["next"]


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("owner", 201),
        ("maintainer", 201),
        ("viewer", 403),
        ("token:write", 201),
        ("token:read", 403),
        ("outsider", 404),
        ("admin", 201),
    ],
)
def test_it_creates_models_for_maintainers_and_up(client_for, team, who, status):
    response = client_for(who).post(LIST, {"name": "churn", "team": "fraud"}, format="json")
    assert response.status_code == status, response.content
    assert RegisteredModel.objects.filter(name="churn").exists() is (status == 201)
    if status == 201:
        assert response.json()["team"] == "fraud"
        assert AuditEvent.objects.filter(action="model.create", target_label="churn").count() == 1


def test_only_owners_choose_a_non_default_risk_tier(client_for, team):
    body = {"name": "churn", "team": "fraud", "risk_tier": "high"}
    assert client_for("maintainer").post(LIST, body, format="json").status_code == 403
    assert client_for("owner").post(LIST, body, format="json").status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Not A Slug!", "team": "fraud"}, "name"),
        ({"name": "churn", "team": "fraud", "colour": "red"}, "colour"),
        ({"name": "churn", "team": "fraud", "tags": "nope"}, "tags"),
        ({"name": "churn", "team": "fraud", "risk_tier": "extreme"}, "risk_tier"),
        ({"team": "fraud"}, "name"),
    ],
)
def test_it_rejects_bad_input_naming_the_field(client_for, team, body, field):
    response = client_for("owner").post(LIST, body, format="json")
    assert response.status_code == 400
    problem = response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert field in {e["field"] for e in problem["errors"]}
    assert not RegisteredModel.objects.exists()


def test_it_rejects_malformed_json(client_for, team):
    response = client_for("owner").post(LIST, '{"name": "churn",', content_type="application/json")
    assert response.status_code == 400
    assert "Malformed" in response.json()["detail"]


def test_it_rejects_json_nan(client_for, team):
    response = client_for("owner").post(
        LIST, '{"name": "churn", "team": "fraud", "tags": [NaN]}', content_type="application/json"
    )
    assert response.status_code == 400


def test_it_rejects_a_non_json_content_type(client_for, team):
    response = client_for("owner").post(
        LIST, "name=churn", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415


def test_it_rejects_a_duplicate_name_with_409(client_for, model):
    response = client_for("owner").post(LIST, {"name": model.name, "team": "fraud"}, format="json")
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "name"


def test_it_refuses_a_body_over_the_limit_with_413(client_for, team, settings):
    settings.MAX_REQUEST_BODY_BYTES = 1000
    body = {"name": "churn", "team": "fraud", "description": "x" * 2000}
    response = client_for("owner").post(LIST, body, format="json")
    assert response.status_code == 413
    assert not RegisteredModel.objects.exists()


def test_it_reads_one_model(client_for, model):
    response = client_for("viewer").get(f"{LIST}{model.name}/")
    assert response.status_code == 200
    assert response.json()["risk_tier"] == "high"
    assert client_for("outsider").get(f"{LIST}{model.name}/").status_code == 404
    assert client_for("viewer").get(f"{LIST}nope/").status_code == 404


@pytest.mark.parametrize(("who", "status"), [("owner", 200), ("maintainer", 403), ("viewer", 403)])
def test_only_owners_change_the_risk_tier(client_for, model, who, status):
    response = client_for(who).patch(f"{LIST}{model.name}/", {"risk_tier": "low"}, format="json")
    assert response.status_code == status
    model.refresh_from_db()
    assert (model.risk_tier == "low") is (status == 200)


def test_maintainers_change_description_and_tags(client_for, model):
    response = client_for("maintainer").patch(
        f"{LIST}{model.name}/", {"description": "v2", "tags": ["b", "a", "a"]}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["tags"] == ["a", "b"]
    event = AuditEvent.objects.get(action="model.update")
    assert event.before == {"description": "", "tags": []}
    assert event.after == {"description": "v2", "tags": ["a", "b"]}


def test_the_name_of_a_model_cannot_be_patched(client_for, model):
    response = client_for("owner").patch(f"{LIST}{model.name}/", {"name": "other"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "name"


def test_wrong_method_is_405(client_for, model):
    assert client_for("owner").delete(f"{LIST}{model.name}/").status_code == 405
