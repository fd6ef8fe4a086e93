"""/api/v1/models/{name}/aliases/{alias}/: point, move, delete."""

from __future__ import annotations

import pytest

from identity.models import AuditEvent
from registry.models import Alias
from tests.factories import ModelVersionFactory

URL = "/api/v1/models/fraud-detector/aliases/champion/"


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("maintainer", 200),
        ("token:write", 200),
        ("viewer", 403),
        ("token:read", 403),
        ("outsider", 404),
    ],
)
def test_maintainers_point_an_alias(client_for, version, who, status):
    response = client_for(who).put(URL, {"version": 1}, format="json")
    assert response.status_code == status
    assert Alias.objects.filter(name="champion").exists() is (status == 200)


def test_it_moves_reads_lists_and_deletes_an_alias(client_for, model):
    ModelVersionFactory(model=model, number=1)
    ModelVersionFactory(model=model, number=2)
    client = client_for("maintainer")
    client.put(URL, {"version": 1}, format="json")
    moved = client.put(URL, {"version": 2}, format="json").json()
    assert moved["version"] == 2
    assert client.get(URL).json()["version"] == 2
    assert [a["name"] for a in client.get("/api/v1/models/fraud-detector/aliases/").json()] == [
        "champion"
    ]
    assert client.get("/api/v1/models/fraud-detector/versions/2/").json()["aliases"] == ["champion"]
    assert client.delete(URL).status_code == 204
    assert client.get(URL).status_code == 404
    events = AuditEvent.objects.filter(action__startswith="alias.").order_by("id")
    assert [(e.action, e.before, e.after) for e in events] == [
        ("alias.set", None, {"version": 1}),
        ("alias.set", {"version": 1}, {"version": 2}),
        ("alias.delete", {"version": 2}, None),
    ]


def test_it_refuses_a_version_that_does_not_exist(client_for, version):
    response = client_for("maintainer").put(URL, {"version": 7}, format="json")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "version"


@pytest.mark.parametrize("body", [{"version": "1"}, {"version": 0}, {}, {"version": 1, "x": 1}])
def test_it_rejects_bad_alias_bodies(client_for, version, body):
    assert client_for("maintainer").put(URL, body, format="json").status_code == 400
    assert not Alias.objects.exists()


def test_deleting_a_missing_alias_is_404(client_for, version):
    assert client_for("maintainer").delete(URL).status_code == 404
