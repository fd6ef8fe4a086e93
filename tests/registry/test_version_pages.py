"""GET /api/v1/models/{name}/versions/: keyset (cursor) pages on (model, number), stable while
versions are registered, with links to follow and a 400 naming the parameter for a bad one."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlparse

import pytest

from identity.audit import Actor
from registry import selectors, services
from registry.api.serializers import VersionSerializer
from tests.factories import ModelVersionFactory, make_token


def url(model) -> str:  # type: ignore[no-untyped-def]
    return f"/api/v1/models/{model.name}/versions/"


def numbers(page: dict) -> list[int]:
    return [v["number"] for v in page["results"]]


def follow(client, link: str) -> dict:  # type: ignore[no-untyped-def]
    parts = urlparse(link)
    response = client.get(parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()})
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def seven(model):  # type: ignore[no-untyped-def]
    for number in range(1, 8):
        ModelVersionFactory(model=model, number=number)
    model.last_version_number = 7
    model.save(update_fields=["last_version_number"])
    return model


def test_it_pages_newest_first_by_cursor_without_a_count(client_for, seven):
    client = client_for("viewer")
    first = client.get(url(seven), {"limit": 3}).json()
    assert set(first) == {"next", "previous", "results"}
    assert numbers(first) == [7, 6, 5] and first["previous"] is None
    second = follow(client, first["next"])
    assert numbers(second) == [4, 3, 2]
    last = follow(client, second["next"])
    assert numbers(last) == [1] and last["next"] is None
    assert numbers(follow(client, last["previous"])) == [4, 3, 2]


def test_a_page_stays_put_while_versions_are_registered(client_for, seven):
    client = client_for("viewer")
    first = client.get(url(seven), {"limit": 3}).json()
    for number in (8, 9):  # registered between two page requests, as CI does
        ModelVersionFactory(model=seven, number=number)
    assert numbers(follow(client, first["next"])) == [4, 3, 2]
    assert numbers(client.get(url(seven), {"limit": 3}).json()) == [9, 8, 7]


@pytest.mark.parametrize("ordering", ["number", "created_at"])
def test_it_walks_oldest_first_on_request(client_for, seven, ordering):
    client = client_for("viewer")
    first = client.get(url(seven), {"limit": 4, "ordering": ordering}).json()
    assert numbers(first) == [1, 2, 3, 4]
    assert numbers(follow(client, first["next"])) == [5, 6, 7]
    newest = client.get(url(seven), {"limit": 2, "ordering": f"-{ordering}"}).json()
    assert numbers(newest) == [7, 6]


def test_filters_apply_before_the_cursor(client_for, seven):
    seven.versions.filter(number__in=[2, 5]).update(status="deprecated")
    client = client_for("viewer")
    first = client.get(url(seven), {"limit": 1, "status": "deprecated"}).json()
    assert numbers(first) == [5]
    assert numbers(follow(client, first["next"])) == [2]


def _cursor(query: str) -> str:
    return base64.b64encode(query.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    ["not-base64!", _cursor("p=abc"), _cursor("o=3&p=5"), _cursor("p=5;DROP"), "", "%%%"],
)
def test_a_cursor_it_did_not_issue_is_a_400_naming_the_parameter(client_for, seven, cursor):
    response = client_for("viewer").get(url(seven), {"cursor": cursor})
    if cursor == "":
        assert response.status_code == 200  # no cursor: the first page
        return
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == "cursor"


def test_an_offset_is_refused_with_the_way_to_page(client_for, seven):
    client = client_for("viewer")
    response = client.get(url(seven), {"offset": 50})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "offset"
    assert "next" in response.json()["detail"]
    assert client.get(url(seven), {"offset": 0}).status_code == 200


def test_outsiders_get_404_before_any_page(client_for, seven):
    assert client_for("outsider").get(url(seven)).status_code == 404
    assert client_for("anonymous").get(url(seven)).status_code in {401, 403}


def test_the_answer_is_the_declared_serializer_field_for_field(client_for, seven, people):
    """VersionSerializer builds its answer by hand for speed; DRF's generic walk over the declared
    fields (what the OpenAPI document describes) must give exactly the same."""
    version = seven.versions.get(number=7)
    version.created_by = people["maintainer"]
    version.tags = ["nightly"]
    version.save()
    services.alias_set(actor=Actor.system("t"), model=seven, name="champion", version_number=7)
    services.alias_set(actor=Actor.system("t"), model=seven, name="blue", version_number=7)
    detail = selectors.version_detail(people["viewer"], seven.name, 7)
    serializer = VersionSerializer()
    generic = super(VersionSerializer, serializer).to_representation(detail)
    assert serializer.to_representation(detail) == generic
    assert generic["aliases"] == ["blue", "champion"] and generic["created_by"] == "maintainer"
    listed = client_for("viewer").get(url(seven), {"limit": 1}).json()["results"][0]
    assert listed == client_for("viewer").get(f"{url(seven)}7/").json() == dict(generic)

    token, _ = make_token(seven.team, ["write"])
    seven.versions.filter(number=6).update(created_by_token=token)
    by_token = selectors.version_detail(people["viewer"], seven.name, 6)
    generic = super(VersionSerializer, serializer).to_representation(by_token)
    assert serializer.to_representation(by_token) == generic
    assert generic["created_by"] == f"token:{token.prefix}" and generic["aliases"] == []
    page = client_for("viewer").get(url(seven), {"limit": 3}).json()["results"]
    assert [v["created_by"] for v in page] == ["maintainer", f"token:{token.prefix}", ""]
