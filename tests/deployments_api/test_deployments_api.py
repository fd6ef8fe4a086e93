"""/api/v1/deployments/: list, create, read, configure (new config revision) and history."""

from __future__ import annotations

import pytest

from deployments.models import Deployment, DeploymentConfig, Rollback
from identity.models import AuditEvent
from tests.factories import RegisteredModelFactory, deployment_of

URL = "/api/v1/deployments/"


def create_body(**overrides):  # type: ignore[no-untyped-def]
    body = {
        "model": "fraud-detector",
        "environment": "staging",
        "strategy": "canary",
        "strategy_params": {"steps": [20, 100], "analysis_interval_seconds": 120},
        "replicas": 3,
        "cpu_request": "500m",
        "env": {"LOG_LEVEL": "info"},
        "secret_refs": [{"env_name": "DB_URL", "secret_name": "fraud-db", "secret_key": "url"}],
    }
    return {**body, **overrides}


@pytest.mark.parametrize("who", ["owner", "maintainer", "viewer", "token:read", "token:write"])
def test_team_members_and_tokens_list_the_teams_deployments(client_for, deployment, who):
    response = client_for(who).get(URL)
    assert response.status_code == 200
    (row,) = response.json()["results"]
    assert row["id"] == deployment.pk
    assert row["stable_version"] == 2 and row["previous_stable_version"] == 1
    assert row["environment"] == "production" and row["model"] == "fraud-detector"


def test_an_outsider_sees_no_deployment_of_the_team(client_for, deployment):
    assert client_for("outsider").get(URL).json()["results"] == []
    assert client_for("outsider").get(f"{URL}{deployment.pk}/").status_code == 404


def test_it_filters_by_environment_and_model(client_for, deployment, envs, team):
    other = RegisteredModelFactory(name="churn", team=team)
    deployment_of(other, envs[0])
    client = client_for("viewer")
    by_env = client.get(URL, {"environment": "staging"}).json()["results"]
    assert [row["model"] for row in by_env] == ["churn"]
    by_model = client.get(URL, {"model": "fraud-detector"}).json()["results"]
    assert [row["id"] for row in by_model] == [deployment.pk]


def test_it_shows_config_active_release_and_last_rollback(client_for, deployment, people):
    Rollback.objects.create(
        deployment=deployment,
        from_version=deployment.stable_version,
        to_version=deployment.previous_stable_version,
        actor_label="owner",
        reason="latency",
    )
    body = client_for("viewer").get(f"{URL}{deployment.pk}/").json()
    assert body["config"]["revision"] == 1
    assert body["active_release"] is None
    assert body["last_rollback"]["to_version"] == 1
    assert body["last_rollback"]["actor"] == "owner"
    assert body["effective_strategy_params"]["steps"] == [10, 50, 100]


def test_one_deployment_loads_only_its_newest_rollback(client_for, deployment, people):
    from deployments import selectors

    for reason in ("first", "second", "third"):
        Rollback.objects.create(
            deployment=deployment,
            from_version=deployment.stable_version,
            to_version=deployment.previous_stable_version,
            actor_label="owner",
            reason=reason,
        )
    loaded = selectors.deployment_get(people["viewer"], deployment.pk)
    assert [rb.reason for rb in loaded.rollback_history] == ["third"]
    body = client_for("viewer").get(f"{URL}{deployment.pk}/").json()
    assert body["last_rollback"]["reason"] == "third"


@pytest.mark.parametrize("who", ["maintainer", "owner", "token:write"])
def test_maintainers_and_write_tokens_create_a_deployment(client_for, versions, envs, who):
    response = client_for(who).post(URL, create_body(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "fraud-detector" and body["environment"] == "staging"
    assert body["config"]["revision"] == 1 and body["config"]["replicas"] == 3
    assert body["config"]["secret_refs"][0]["secret_name"] == "fraud-db"
    assert body["strategy_params"]["steps"] == [20, 100]


@pytest.mark.parametrize("who", ["viewer", "token:read"])
def test_viewers_and_read_tokens_cannot_create_one(client_for, versions, envs, who):
    assert client_for(who).post(URL, create_body(), format="json").status_code == 403
    assert not Deployment.objects.exists()


def test_an_outsider_cannot_see_the_model_to_deploy(client_for, versions, envs):
    response = client_for("outsider").post(URL, create_body(), format="json")
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "model"


@pytest.mark.parametrize(
    ("override", "field", "code"),
    [
        ({"strategy_params": {"steps": [50, 20]}}, "strategy_params.steps", 422),
        ({"cpu_request": "lots"}, "cpu_request", 422),
        ({"env": {"API_TOKEN": "x"}}, "env.API_TOKEN", 422),
        ({"replicas": "3"}, "replicas", 400),
        ({"strategy": "big-bang"}, "strategy", 400),
        ({"colour": "blue"}, "colour", 400),
        ({"environment": "mars"}, "environment", 404),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    client_for, versions, envs, override, field, code
):
    response = client_for("maintainer").post(URL, create_body(**override), format="json")
    assert response.status_code == code, response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field
    assert not Deployment.objects.exists() and not DeploymentConfig.objects.exists()


def test_a_second_deployment_of_the_model_in_an_environment_conflicts(client_for, deployment):
    response = client_for("maintainer").post(
        URL, create_body(environment="production"), format="json"
    )
    assert response.status_code == 409
    assert Deployment.objects.filter(environment__name="production").count() == 1


def test_patch_adds_a_config_revision_and_keeps_the_history(client_for, deployment):
    client = client_for("maintainer")
    response = client.patch(
        f"{URL}{deployment.pk}/", {"replicas": 4, "memory_limit": "2Gi"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["config"]["revision"] == 2
    assert response.json()["config"]["replicas"] == 4
    history = client.get(f"{URL}{deployment.pk}/configs/").json()
    assert [row["revision"] for row in history] == [2, 1]
    assert history[0]["memory_limit"] == "2Gi" and history[1]["memory_limit"] == "1Gi"
    assert history[0]["created_by"] == "maintainer"


def test_patch_changes_the_strategy(client_for, deployment):
    response = client_for("owner").patch(
        f"{URL}{deployment.pk}/", {"strategy": "blue_green", "strategy_params": {}}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["strategy"] == "blue_green"
    assert response.json()["config"]["revision"] == 1


def test_patch_sets_the_rollback_notes_without_a_config_revision(client_for, deployment):
    notes = "Check the feature store lag first; v1 is safe to go back to."
    response = client_for("maintainer").patch(
        f"{URL}{deployment.pk}/", {"rollback_notes": notes}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["rollback_notes"] == notes
    assert response.json()["config"]["revision"] == 1
    event = AuditEvent.objects.filter(action="deployment.configure").latest("id")
    assert event.before["rollback_notes"] == "" and event.after["rollback_notes"] == notes


def test_rollback_notes_longer_than_the_limit_are_refused(client_for, deployment):
    response = client_for("maintainer").patch(
        f"{URL}{deployment.pk}/", {"rollback_notes": "x" * 4001}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "rollback_notes"
    deployment.refresh_from_db()
    assert deployment.rollback_notes == ""


@pytest.mark.parametrize("who", ["viewer", "token:read"])
def test_viewers_cannot_configure(client_for, deployment, who):
    response = client_for(who).patch(f"{URL}{deployment.pk}/", {"replicas": 9}, format="json")
    assert response.status_code == 403
    assert deployment.configs.count() == 1


def test_a_bad_config_value_is_refused_without_a_new_revision(client_for, deployment):
    response = client_for("maintainer").patch(
        f"{URL}{deployment.pk}/", {"slo_error_rate": 3.0}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "slo_error_rate"
    assert deployment.configs.count() == 1


def test_it_rejects_put_and_delete(client_for, deployment):
    client = client_for("owner")
    assert client.put(f"{URL}{deployment.pk}/", {}, format="json").status_code == 405
    assert client.delete(f"{URL}{deployment.pk}/").status_code == 405
