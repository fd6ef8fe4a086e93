"""Human review end to end, on real processes: the control plane served by gunicorn on
PostgreSQL, a Celery worker on Redis, and `python -m serving` processes started with the
environment the runtime gives a deployment under a review policy (deployments.engine.binding).

A policy holds low-confidence predictions: those requests answer "pending review" with a
reference while confident ones answer as before; the items reach the queue through the serving
outbox; a reviewer overrides one and the callback receives the signed outcome; an appeal goes to
a second reviewer and the first is refused. Then the control plane stops for a while: the
outbox keeps what the service holds meanwhile and delivers every item when it returns, none lost
and none twice (counted in the serving metrics and in the database)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.engine import binding
from deployments.models import Deployment
from reviews.models import Decision, ReviewItem, ReviewStatus
from serving.demo_model import MODEL_NAME
from serving.packaging import PackageInfo
from tests.factories import make_token, review_deployment_of, reviewer_in
from tests.reviews.test_callbacks import verify
from tests.serving.conftest import ServiceProcess, metric_value, service_env, start_service
from tests.serving.test_review_serving import SUMMARY, _infer
from tests.support.celery import ROOT, celery_worker, stop_process_group, worker_env
from tests.support.prometheus import free_port
from tests.support.receiver import Receiver

pytestmark = pytest.mark.slow

SECRET_ENV = "E2E_REVIEW_HMAC"
SECRET = "e2e-review-hmac-secret"
THRESHOLD = 0.9
WAIT_SECONDS = 60.0


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class ControlPlane:
    """The control plane's web process (gunicorn, as in production) on a fixed loopback port,
    pointed at this test's database; it can be stopped and started again on the same port."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ControlPlane:
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "1",
            "--threads",
            "4",
            "controlplane.wsgi:application",
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=worker_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def ready() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            return False

        wait_for("the control plane to answer", ready)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)
            self.proc = None


@pytest.fixture
def control_plane(transactional_db: None, tmp_path: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path / "gunicorn.log").start()
    yield plane
    plane.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver("/hooks/reviews") as server:
        yield server


@pytest.fixture
def worker(transactional_db: None, tmp_path: Path) -> Iterator[None]:
    with celery_worker(tmp_path / "worker.log", extra_env={SECRET_ENV: SECRET}):
        yield


@pytest.fixture
def deployment(team, receiver: Receiver) -> Deployment:  # type: ignore[no-untyped-def]
    return review_deployment_of(
        team,
        name=MODEL_NAME,
        policy={
            "mode": "held",
            "confidence_below": THRESHOLD,
            "sla_minutes": 240,
            "callback_url": receiver.url,
            "callback_secret_env": SECRET_ENV,
        },
    )


@pytest.fixture
def service(
    deployment: Deployment,
    control_plane: ControlPlane,
    reviewable: PackageInfo,
    team,  # type: ignore[no-untyped-def]
    settings,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> Iterator[ServiceProcess]:
    """A serving process of the deployment's stable version, with the environment the runtime
    gives it (the policy's selection, the deployment, the submission URL) and the team's token
    as the secret it inherits."""
    settings.PORTAL_URL = control_plane.url
    spec = binding.version_spec(deployment, deployment.config, deployment.stable_version, None)
    assert set(spec.serving_env) == {
        "MODELPLANE_REVIEW_POLICY",
        "MODELPLANE_REVIEW_DEPLOYMENT",
        "MODELPLANE_REVIEW_URL",
    }
    _, token = make_token(team, ["write"], name="serving")
    env = service_env(
        reviewable,
        **spec.serving_env,
        MODEL_VERSION="1",
        MODELPLANE_REVIEW_TOKEN=token,
        MODELPLANE_REVIEW_OUTBOX_DIR=str(tmp_path / "outbox"),
        MODELPLANE_REVIEW_BACKOFF_SECONDS="0.05",
        MODELPLANE_REVIEW_BACKOFF_MAX_SECONDS="0.5",
    )
    process = start_service(tmp_path / "serving", env)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def serving_metric(service: ServiceProcess, name: str, **labels: str) -> float:
    text = httpx.get(f"{service.base_url}/metrics", timeout=5).text
    return metric_value(text, name, **labels)


def held(service: ServiceProcess, row: dict[str, Any], request_id: str) -> str:
    with service.client() as client:
        answer = _infer(client, [row], request_id)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "pending_review"
    [review] = body["reviews"]
    assert review["reason"] == "low_confidence"
    return review["ref"]


def test_held_predictions_are_reviewed_appealed_and_survive_a_control_plane_outage(
    team, deployment, service, control_plane, receiver, worker, client, rows
):  # type: ignore[no-untyped-def]
    rita, sam = reviewer_in(team, "rita"), reviewer_in(team, "sam")
    _, read_token = make_token(team, ["read"], name="caller")
    _, write_token = make_token(team, ["write"], name="appeals")

    # Low confidence is held with a reference; a confident answer is unchanged (200).
    refs = [held(service, row, f"req-low-{i}") for i, row in enumerate(rows["low"][:3])]
    with service.client() as plain:
        for i, row in enumerate(rows["sure"][:3]):
            answer = _infer(plain, [row], f"req-sure-{i}")
            assert answer.status_code == 200 and "reviews" not in answer.json()

    # The items reach the queue through the outbox, with only the declared summary fields.
    wait_for("3 items", lambda: ReviewItem.objects.count() == 3)
    client.force_login(rita)
    queue = client.get("/api/v1/reviews/queue").json()
    assert sorted(item["ref"] for item in queue["results"]) == sorted(refs)
    first = ReviewItem.objects.get(ref=refs[0])
    assert set(first.input_summary) == set(SUMMARY)
    assert (first.track, first.model_version.number) == ("stable", 1)

    # Rita overrides the first; the callback receives the signed outcome.
    predicted = first.prediction["label"]
    corrected = "benign" if predicted == "malignant" else "malignant"
    assert client.post(f"/api/v1/reviews/{refs[0]}/claim").status_code == 200
    decided = client.post(
        f"/api/v1/reviews/{refs[0]}/decide",
        {"decision": "override", "reason": "radius says otherwise", "output": {"label": corrected}},
        content_type="application/json",
    )
    assert decided.status_code == 200, decided.content
    call = wait_for("the level-1 callback", lambda: receiver.calls and receiver.calls[-1])
    verify(SECRET, call.headers["X-Modelplane-Signature"], call.body)
    assert call.json["ref"] == refs[0]
    assert (call.json["decision"], call.json["output"], call.json["level"]) == (
        "override",
        {"label": corrected},
        1,
    )

    # The caller reads the outcome by reference over HTTP, then relays the subject's appeal.
    caller = {"Authorization": f"Bearer {read_token}"}
    outcome = httpx.get(f"{control_plane.url}/api/v1/reviews/{refs[0]}/", headers=caller).json()
    assert (outcome["status"], outcome["output"], outcome["appealable"]) == (
        "decided",
        {"label": corrected},
        True,
    )
    assert "input_summary" not in outcome
    appeal = httpx.post(
        f"{control_plane.url}/api/v1/reviews/{refs[0]}/appeal",
        json={"statement": "My results were reviewed by my own doctor."},
        headers={"Authorization": f"Bearer {write_token}"},
    )
    assert appeal.status_code == 201, appeal.text

    # The appeal goes to a different reviewer: Rita is refused, Sam decides, and it is final.
    refused = client.post(f"/api/v1/reviews/{refs[0]}/claim")
    assert refused.status_code == 403
    assert "different reviewer" in refused.json()["detail"]
    client.force_login(sam)
    final = client.post(
        f"/api/v1/reviews/{refs[0]}/decide",
        {"decision": "confirm", "reason": "the correction stands"},
        content_type="application/json",
    )
    assert final.status_code == 200, final.content
    item = ReviewItem.objects.get(ref=refs[0])
    assert (item.level, item.status, item.decided_by, item.first_decided_by) == (
        2,
        ReviewStatus.DECIDED,
        sam,
        rita,
    )
    assert item.decision == Decision.CONFIRM
    level2 = wait_for(
        "the level-2 callback", lambda: [c for c in receiver.calls if c.json["level"] == 2]
    )
    verify(SECRET, level2[0].headers["X-Modelplane-Signature"], level2[0].body)
    assert level2[0].json["appealable"] is False

    # The control plane stops for a while: held requests still answer at once, and wait.
    control_plane.stop()
    outage = [held(service, row, f"req-outage-{i}") for i, row in enumerate(rows["low"][3:7])]
    wait_for(
        "the sender to retry",
        lambda: serving_metric(service, "modelplane_review_outbox_retried_total") >= 2,
    )
    assert ReviewItem.objects.count() == 3
    control_plane.start()
    wait_for("every held item", lambda: ReviewItem.objects.count() == 7)
    assert set(ReviewItem.objects.filter(ref__in=outage).values_list("ref", flat=True)) == set(
        outage
    )
    assert serving_metric(service, "modelplane_review_outbox_queued_total") == 7
    wait_for(
        "the sent count",
        lambda: serving_metric(service, "modelplane_review_outbox_sent_total") == 7,
    )
    assert serving_metric(service, "modelplane_review_outbox_dropped_total") == 0
    assert serving_metric(service, "modelplane_review_outbox_depth") == 0
