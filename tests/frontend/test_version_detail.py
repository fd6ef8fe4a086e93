"""The version page: artifact, lineage, schemas, metrics, baseline, and the status form."""

from __future__ import annotations

import pytest

from identity.models import AuditEvent
from registry.models import ModelVersion
from tests.factories import ModelVersionFactory
from tests.support.pages import html_of

URL = "/models/fraud-scorer/versions/1/"


@pytest.fixture
def rich_version(scorer) -> ModelVersion:  # type: ignore[no-untyped-def]
    ModelVersion.objects.filter(model=scorer, number=1).update(
        image="registry.example.com/fraud/scorer@sha256:" + "a" * 64,
        framework="sklearn",
        config={"resources": {"cpu": "500m"}},
        output_schema={"type": "object", "properties": {"score": {"type": "number"}}},
        example_requests=[{"instances": [{"age": 31, "plan": "pro"}]}],
        training_metrics={"auc": 0.91},
        baseline_profile={
            "features": {
                "age": {"type": "numeric", "bin_edges": [0, 10, 20, 30], "counts": [1, 2, 3]},
                "plan": {"type": "categorical", "frequencies": {"basic": 0.7, "pro": 0.3}},
            }
        },
        source_commit="0123abcd",
        ci_run_url="https://ci.example.com/runs/42",
        training_data_ref="s3://data/fraud/2024-06",
        digest_verified=True,
        tags=["candidate"],
    )
    return scorer.versions.get(number=1)


def test_it_shows_artifact_lineage_schemas_metrics_and_baseline(browser_for, rich_version):
    response = browser_for("viewer").get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert rich_version.artifact_uri in html and rich_version.artifact_digest in html
    assert '<span class="badge ok">verified</span>' in html
    assert "registry.example.com/fraud/scorer@sha256:" in html and "sklearn" in html
    assert '<a href="https://ci.example.com/runs/42" rel="noopener noreferrer">' in html
    assert "0123abcd" in html and "s3://data/fraud/2024-06" in html
    assert "<td>age</td><td>numeric</td>" in html and "3 bins" in html
    assert "basic, pro" in html
    assert "auc</th><td>0.91" in html
    assert "&quot;cpu&quot;: &quot;500m&quot;" in html  # pretty JSON, escaped
    assert '<span class="tag">@champion</span>' in html
    assert '<span class="tag">candidate</span>' in html


def test_it_never_turns_a_stored_url_into_a_javascript_link(browser_for, scorer):
    ModelVersion.objects.filter(model=scorer, number=1).update(ci_run_url="javascript:alert(1)")
    html = html_of(browser_for("viewer"), URL)
    assert 'href="javascript:' not in html


def test_an_outsider_gets_404_and_a_missing_version_is_404(browser_for, scorer):
    assert browser_for("outsider").get(URL).status_code == 404
    assert browser_for("viewer").get("/models/fraud-scorer/versions/9/").status_code == 404


def test_it_rejects_delete(browser_for, scorer):
    assert browser_for("maintainer").delete(URL).status_code == 405


def test_it_offers_only_the_allowed_status_moves(browser_for, scorer):
    html = html_of(browser_for("maintainer"), URL)
    for allowed in ("registered", "validated", "deprecated", "archived"):
        assert f'<option value="{allowed}"' in html
    assert '<option value="approved"' not in html  # registered cannot jump to approved


def test_a_maintainer_moves_a_version_along_and_retags_it(browser_for, scorer):
    response = browser_for("maintainer").post(URL, {"status": "validated", "tags": "a, b"})
    assert response.status_code == 302
    version = scorer.versions.get(number=1)
    assert (version.status, version.tags) == ("validated", ["a", "b"])
    event = AuditEvent.objects.get(action="version.update")
    assert event.before["status"] == "registered" and event.after["status"] == "validated"


def test_a_disallowed_move_is_refused_with_409_and_nothing_written(browser_for, scorer):
    events = AuditEvent.objects.count()
    response = browser_for("maintainer").post(URL, {"status": "approved", "tags": "x"})
    assert response.status_code == 409
    assert b"a registered version cannot become approved" in response.content
    version = scorer.versions.get(number=1)
    assert (version.status, version.tags) == ("registered", [])
    assert AuditEvent.objects.count() == events


def test_an_archived_version_offers_no_move(browser_for, scorer):
    ModelVersionFactory(model=scorer, number=3, status="archived")
    html = html_of(browser_for("maintainer"), "/models/fraud-scorer/versions/3/")
    assert '<option value="archived" selected>' in html
    assert '<option value="approved"' not in html


def test_a_viewer_sees_no_form_and_is_forbidden_to_post_it(browser_for, scorer):
    client = browser_for("viewer")
    assert "Update version" not in html_of(client, URL)
    response = client.post(URL, {"status": "validated", "tags": ""})
    assert response.status_code == 403
    assert scorer.versions.get(number=1).status == "registered"


def test_bad_input_shows_errors_and_writes_nothing(browser_for, scorer):
    client = browser_for("maintainer")
    unknown = client.post(URL, {"status": "retired", "tags": ""})
    assert unknown.status_code == 400
    assert b"Select a valid choice" in unknown.content
    too_long = client.post(URL, {"status": "validated", "tags": "x" * 65})
    assert too_long.status_code == 422
    assert b"1 to 64 characters" in too_long.content
    assert scorer.versions.get(number=1).status == "registered"
    assert not AuditEvent.objects.filter(action="version.update").exists()
