"""The control plane's `/metrics`: values of stored analyses as parsed by prometheus_client's own
parser, release and rollback counts, a query count that does not grow with releases, and who may
read it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from deployments.models import (
    Deployment,
    DeploymentConfig,
    Environment,
    Release,
    ReleaseState,
    ReleaseStep,
    Rollback,
    RollbackState,
)
from monitoring.api.exporter import exposition
from tests.factories import ModelVersionFactory, RegisteredModelFactory, UserFactory, make_token

pytestmark = pytest.mark.django_db
REMOTE = "203.0.113.9"  # TEST-NET-3: never loopback


def make_release(
    *, stable: int = 1, canary: int = 2, state: str = ReleaseState.PROGRESSING
) -> Release:
    """A release of a fresh model's deployment in production (one active release each)."""
    environment, _ = Environment.objects.get_or_create(
        name="production", defaults={"runtime_kind": "local"}
    )
    model = RegisteredModelFactory()
    versions = {n: ModelVersionFactory(model=model, number=n) for n in (stable, canary)}
    deployment = Deployment.objects.create(
        name=model.name, model=model, environment=environment, stable_version=versions[stable]
    )
    config = DeploymentConfig.objects.create(deployment=deployment, revision=1)
    return Release.objects.create(
        deployment=deployment,
        version=versions[canary],
        from_version=versions[stable],
        config=config,
        strategy="canary",
        state=state,
        author_label="tests",
    )


def store_analysis(release: Release, result: dict[str, Any], weight: int) -> ReleaseStep:
    """Record an analysis step as the engine does (deployments/engine.py, _step_analyze)."""
    return ReleaseStep.objects.create(
        release=release,
        kind="analysis",
        outcome=result["verdict"],
        actor_label="system:release-engine",
        reason="; ".join(result["reasons"]),
        evidence={
            "verdict": result["verdict"],
            "reasons": result["reasons"],
            "weight": weight,
            **result["evidence"],
        },
    )


def analysis(
    verdict: str,
    *,
    stable: int = 1,
    canary: int = 2,
    error_rate: float = 0.0,
    p95: float = 0.02,
    psi_max: float | None = 0.03,
    cost_per_1000: float | None = 0.011,
) -> dict[str, Any]:
    """An analysis result in the shape `AnalysisVerdict.to_dict()` gives (only the fields the
    exporter reads, and a stable side a little faster than the canary)."""
    side = {"model": "m", "version": None}
    return {
        "verdict": verdict,
        "reasons": [f"canary {verdict}"],
        "evidence": {
            "stable": {**side, "version": stable},
            "canary": {**side, "version": canary},
            "stable_stats": {"requests": 400.0, "error_rate": 0.0, "latency_p95": p95 / 2},
            "canary_stats": {"requests": 200.0, "error_rate": error_rate, "latency_p95": p95},
            "drift": {"status": "ok", "psi_max": psi_max, "js_max": 0.02},
            "cost": {
                "stable": {"cost_per_1000_at_full_traffic": 0.01},
                "canary": {"cost_per_1000_at_full_traffic": cost_per_1000},
            },
        },
    }


def parse(body: bytes) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def labels_of(release: Release, **extra: str) -> tuple:
    return tuple(
        sorted(
            {
                "deployment": release.deployment.name,
                "environment": "production",
                "release": str(release.pk),
                **extra,
            }.items()
        )
    )


def test_it_exports_the_latest_analysis_of_a_release():
    release = make_release(stable=1, canary=2)
    store_analysis(release, analysis("pass", p95=0.02), weight=5)
    store_analysis(release, analysis("fail", error_rate=0.2, p95=0.3, psi_max=0.9), weight=25)
    samples = parse(exposition()[0])
    canary = labels_of(release, version="2", role="canary")
    stable = labels_of(release, version="1", role="stable")
    assert samples[("modelplane_analysis_error_rate", canary)] == 0.2
    assert samples[("modelplane_analysis_error_rate", stable)] == 0.0
    assert samples[("modelplane_analysis_latency_p95_seconds", canary)] == 0.3
    assert samples[("modelplane_analysis_latency_p95_seconds", stable)] == 0.15
    assert samples[("modelplane_analysis_drift_psi_max", canary)] == 0.9
    assert ("modelplane_analysis_drift_psi_max", stable) not in samples
    assert samples[("modelplane_analysis_cost_per_1000_predictions", canary)] == 0.011
    assert samples[("modelplane_analysis_requests", canary)] == 200
    step = labels_of(release, version="2")
    assert samples[("modelplane_analysis_canary_weight_percent", step)] == 25
    verdicts = {
        verdict: samples[
            ("modelplane_analysis_verdict", labels_of(release, version="2", verdict=verdict))
        ]
        for verdict in ("pass", "fail", "inconclusive")
    }
    assert verdicts == {"pass": 0, "fail": 1, "inconclusive": 0}


def test_it_leaves_numbers_the_analysis_did_not_have_absent():
    release = make_release()
    result = {
        "verdict": "inconclusive",
        "reasons": ["no metrics source is configured for this environment"],
        "evidence": {"metrics_kind": "none"},
    }
    store_analysis(release, result, weight=5)
    samples = parse(exposition()[0])
    verdict = labels_of(release, version="2", verdict="inconclusive")
    assert samples[("modelplane_analysis_verdict", verdict)] == 1
    names = {name for name, _ in samples}
    assert "modelplane_analysis_error_rate" not in names
    assert "modelplane_analysis_drift_psi_max" not in names


def test_it_counts_releases_by_state_and_rollbacks():
    make_release(state=ReleaseState.PROGRESSING)
    make_release(state=ReleaseState.PROMOTED)
    failed = make_release(state=ReleaseState.ROLLED_BACK)
    Rollback.objects.create(
        deployment=failed.deployment,
        release=failed,
        from_version=failed.version,
        to_version=failed.from_version,
        actor_label="system:release-engine",
        automatic=True,
        state=RollbackState.DONE,
    )
    samples = parse(exposition()[0])
    assert samples[("modelplane_releases", (("state", "progressing"),))] == 1
    assert samples[("modelplane_releases", (("state", "promoted"),))] == 1
    assert samples[("modelplane_releases", (("state", "rolled_back"),))] == 1
    assert samples[("modelplane_releases", (("state", "failed"),))] == 0
    assert samples[("modelplane_rollbacks_total", (("automatic", "true"),))] == 1
    assert samples[("modelplane_rollbacks_total", (("automatic", "false"),))] == 0


def test_it_skips_releases_that_finished_long_ago():
    old = make_release(state=ReleaseState.PROMOTED)
    store_analysis(old, analysis("pass"), weight=50)
    long_ago = timezone.now() - timedelta(days=3)
    Release.objects.filter(pk=old.pk).update(updated_at=long_ago, finished_at=long_ago)
    recent = make_release(state=ReleaseState.PROMOTED)
    store_analysis(recent, analysis("pass"), weight=50)
    releases = {
        dict(labels)["release"]
        for name, labels in parse(exposition()[0])
        if name == "modelplane_analysis_verdict"
    }
    assert releases == {str(recent.pk)}


def _queries_for_one_scrape() -> int:
    with CaptureQueriesContext(connection) as captured:
        exposition()
    return len(captured)


def test_its_query_count_stays_flat_with_1_and_30_releases():
    store_analysis(make_release(), analysis("pass"), weight=5)
    with_one = _queries_for_one_scrape()
    for _ in range(29):
        release = make_release()
        store_analysis(release, analysis("pass"), weight=5)
        store_analysis(release, analysis("fail"), weight=25)
    with_thirty = _queries_for_one_scrape()
    # Three for the releases and analyses, one for the reviews collector (settings).
    assert with_one == with_thirty <= 4
    verdicts = [name for name, _ in parse(exposition()[0]) if name == "modelplane_analysis_verdict"]
    assert len(verdicts) == 30 * 3


# Access ---------------------------------------------------------------------------------------


def test_it_answers_loopback_clients_without_login(client):
    store_analysis(make_release(), analysis("pass"), weight=5)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "modelplane_analysis_verdict" in response.content.decode()


def test_it_speaks_openmetrics_when_asked(client):
    store_analysis(make_release(), analysis("pass"), weight=5)
    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    families = {f.name for f in openmetrics_families(response.content.decode())}
    assert {"modelplane_analysis_verdict", "modelplane_rollbacks"} <= families


def test_it_refuses_anonymous_remote_clients(client):
    response = client.get("/metrics", REMOTE_ADDR=REMOTE)
    assert response.status_code == 401
    assert "modelplane" not in response.content.decode()


def test_it_refuses_a_loopback_request_that_came_through_a_proxy(client):
    response = client.get("/metrics", HTTP_X_FORWARDED_FOR=REMOTE)
    assert response.status_code == 401


def test_it_lets_anyone_read_when_anonymous_access_is_allowed(client, settings):
    settings.METRICS_ALLOW_ANONYMOUS = "true"
    assert client.get("/metrics", REMOTE_ADDR=REMOTE).status_code == 200


def test_it_lets_a_staff_session_read(client):
    client.force_login(UserFactory(is_staff=True))
    assert client.get("/metrics", REMOTE_ADDR=REMOTE).status_code == 200


def test_it_refuses_a_session_without_staff_rights(client):
    client.force_login(UserFactory())
    assert client.get("/metrics", REMOTE_ADDR=REMOTE).status_code == 403


def test_it_lets_a_read_token_read(client):
    release = make_release()
    _, secret = make_token(release.deployment.model.team, ["read"])
    response = client.get("/metrics", REMOTE_ADDR=REMOTE, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200


def test_it_refuses_an_unknown_token(client):
    response = client.get("/metrics", REMOTE_ADDR=REMOTE, HTTP_AUTHORIZATION="Bearer mp_nope")
    assert response.status_code == 401


def test_it_rejects_post(client):
    assert client.post("/metrics").status_code == 405
