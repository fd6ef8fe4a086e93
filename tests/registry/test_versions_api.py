"""/api/v1/models/{name}/versions/: register by reference, read, PATCH status and tags."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

from identity.models import AuditEvent
from registry.models import ModelVersion, RegisteredModel
from tests.factories import ModelVersionFactory


def url(model, number: int | None = None) -> str:  # type: ignore[no-untyped-def]
    base = f"/api/v1/models/{model.name}/versions/"
    return base if number is None else f"{base}{number}/"


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("owner", 201),
        ("maintainer", 201),
        ("viewer", 403),
        ("token:write", 201),
        ("token:read", 403),
        ("outsider", 404),
        ("anonymous", 401),
    ],
)
def test_it_registers_versions_for_maintainers_and_write_tokens(
    client_for, model, version_body, who, status
):
    response = client_for(who).post(url(model), version_body, format="json")
    assert response.status_code in ({401, 403} if status == 401 else {status}), response.content
    assert ModelVersion.objects.filter(model=model).exists() is (status == 201)


def test_it_numbers_versions_monotonically_and_verifies_the_digest(client_for, model, version_body):
    client = client_for("token:write")
    first = client.post(url(model), version_body, format="json").json()
    second = client.post(url(model), version_body, format="json").json()
    assert (first["number"], second["number"]) == (1, 2)
    assert first["digest_verified"] is True
    assert first["created_by"].startswith("token:")
    assert first["status"] == "registered"
    event = AuditEvent.objects.filter(action="version.register").first()
    assert (
        event.actor_type == "token"
        and event.after["artifact_digest"] == version_body["artifact_digest"]
    )


def test_it_rejects_a_digest_mismatch_and_leaves_nothing_behind(client_for, model, version_body):
    version_body["artifact_digest"] = "sha256:" + "0" * 64
    response = client_for("maintainer").post(url(model), version_body, format="json")
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "/problems/digest-mismatch"
    assert problem["errors"][0]["field"] == "artifact_digest"
    model.refresh_from_db()
    assert model.last_version_number == 0
    assert not ModelVersion.objects.exists()
    assert not AuditEvent.objects.filter(action="version.register").exists()


def test_it_verifies_http_artifacts(client_for, model, version_body):
    payload = b"served artifact" * 100

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/model.mpkg":
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *args):  # type: ignore[no-untyped-def]
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        client = client_for("maintainer")
        good = dict(
            version_body,
            artifact_uri=f"{base}/model.mpkg",
            artifact_digest="sha256:" + hashlib.sha256(payload).hexdigest(),
        )
        assert client.post(url(model), good, format="json").json()["digest_verified"] is True
        bad = dict(good, artifact_digest="sha256:" + "1" * 64)
        assert client.post(url(model), bad, format="json").status_code == 422
        missing = dict(good, artifact_uri=f"{base}/gone.mpkg")
        response = client.post(url(model), missing, format="json")
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "artifact_uri"
    finally:
        server.shutdown()


def test_it_accepts_unreadable_schemes_unverified(client_for, model, version_body):
    body = dict(version_body, artifact_uri="s3://bucket/model.mpkg")
    response = client_for("maintainer").post(url(model), body, format="json")
    assert response.status_code == 201
    assert response.json()["digest_verified"] is False


def test_it_refuses_files_outside_the_artifact_roots(client_for, model, version_body):
    body = dict(version_body, artifact_uri="file:///etc/passwd")
    response = client_for("maintainer").post(url(model), body, format="json")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "artifact_uri"


@pytest.mark.parametrize(
    ("change", "field", "status"),
    [
        (
            {"input_schema": {"type": "object", "properties": {"a": {"type": "nonsense"}}}},
            "input_schema",
            422,
        ),
        ({"input_schema": {"type": "array"}}, "input_schema", 422),
        ({"input_schema": "not a schema"}, "input_schema", 422),
        ({"output_schema": {"minimum": "zero"}}, "output_schema", 422),
        ({"artifact_digest": "md5:abc"}, "artifact_digest", 422),
        ({"image": "registry.example.com/fraud:latest"}, "image", 422),
        (
            {"example_requests": [{"instances": [{"age": -1, "plan": "pro"}]}]},
            "example_requests[0].instances[0]",
            422,
        ),
        (
            {
                "baseline_profile": {
                    "features": {"age": {"type": "numeric", "bin_edges": [3, 1], "counts": [1]}}
                }
            },
            "baseline_profile.features.age.bin_edges",
            422,
        ),
        ({"artifact_uri": "no-scheme"}, "artifact_uri", 422),
        ({"unknown_field": 1}, "unknown_field", 400),
        ({"tags": [1, 2]}, "tags[0]", 400),
        ({"ci_run_url": "not a url"}, "ci_run_url", 400),
        ({"input_schema": None}, "input_schema", 400),
    ],
)
def test_it_rejects_bad_versions_naming_the_field(
    client_for, model, version_body, change, field, status
):
    response = client_for("maintainer").post(url(model), {**version_body, **change}, format="json")
    assert response.status_code == status, response.content
    assert field in {e["field"] for e in response.json()["errors"]}
    assert not ModelVersion.objects.exists()
    assert RegisteredModel.objects.get(pk=model.pk).last_version_number == 0


def test_it_reads_a_version(client_for, version):
    response = client_for("viewer").get(url(version.model, version.number))
    assert response.status_code == 200
    assert response.json()["artifact_digest"] == version.artifact_digest
    assert client_for("viewer").get(url(version.model, 99)).status_code == 404
    assert client_for("outsider").get(url(version.model, version.number)).status_code == 404


def test_it_lists_and_filters_versions(client_for, model):
    ModelVersionFactory(model=model, number=1, status="deprecated")
    ModelVersionFactory(model=model, number=2)
    client = client_for("viewer")
    assert [v["number"] for v in client.get(url(model)).json()["results"]] == [2, 1]
    filtered = client.get(url(model), {"status": "deprecated"}).json()["results"]
    assert [v["number"] for v in filtered] == [1]


@pytest.mark.parametrize(
    ("who", "status"), [("maintainer", 200), ("viewer", 403), ("token:write", 200)]
)
def test_it_patches_status_and_tags_only(client_for, version, who, status):
    response = client_for(who).patch(
        url(version.model, version.number), {"status": "validated", "tags": ["qa"]}, format="json"
    )
    assert response.status_code == status
    version.refresh_from_db()
    assert (version.status == "validated") is (status == 200)


def test_a_version_is_immutable(client_for, version):
    response = client_for("owner").patch(
        url(version.model, version.number), {"artifact_uri": "s3://elsewhere"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0] == {"field": "artifact_uri", "reason": "Unknown field."}


def test_it_refuses_a_status_transition_the_lifecycle_does_not_allow(client_for, version):
    client = client_for("maintainer")
    assert (
        client.patch(url(version.model, 1), {"status": "archived"}, format="json").status_code
        == 200
    )
    response = client.patch(url(version.model, 1), {"status": "approved"}, format="json")
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "status"
