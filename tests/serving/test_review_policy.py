"""The review policy in the serving process: its configuration (MODELPLANE_REVIEW_*), which rows
it selects and why, the item it builds, the pending-review bodies, and what a package declares
for review (the input summary and the linear explanation)."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.config import ConfigError, ReviewPolicy, ReviewSettings, ServingSettings
from serving.demo_model import FEATURES, MODEL_NAME, load_demo_data, sample_requests, train
from serving.packaging import (
    LoadedModel,
    PackageError,
    PackageInfo,
    Prediction,
    load_package,
    package_sklearn,
    read_manifest,
)
from serving.review import (
    CLASS_LISTED,
    HIGH_RISK,
    LOW_CONFIDENCE,
    SAMPLED,
    PolicySelector,
    Reviewer,
    default_outbox_dir,
    hold_infer_payload,
    hold_predict_payload,
    new_ref,
    row_request_id,
)

BASE_ENV = {
    "MODEL_ARTIFACT_URI": "/models/m.zip",
    "MODEL_ARTIFACT_DIGEST": "sha256:" + "0" * 64,
    "MODEL_VERSION": "v3",
}
REVIEW_ENV = {
    "MODELPLANE_REVIEW_POLICY": '{"mode":"held","confidence_below":0.8}',
    "MODELPLANE_REVIEW_URL": "http://portal.example/api/v1/reviews/",
    "MODELPLANE_REVIEW_DEPLOYMENT": "12",
    "MODELPLANE_REVIEW_TOKEN": "mp_secret_token_value",
}
SUMMARY = ["radius_mean", "size_band"]


def _settings(**env: str) -> ServingSettings:
    return ServingSettings.from_env({**BASE_ENV, **env})


# ------------------------------------------------------------------ configuration


def test_without_a_policy_nothing_is_reviewed():
    assert _settings().review is None
    assert _settings(MODELPLANE_REVIEW_POLICY="").review is None
    # A policy that selects nothing reviews nothing (and needs no URL).
    assert _settings(MODELPLANE_REVIEW_POLICY='{"mode": "held"}').review is None


def test_a_policy_is_read_with_its_submission_settings():
    review = _settings(
        **REVIEW_ENV,
        MODELPLANE_REVIEW_OUTBOX_DIR="/var/outbox",
        MODELPLANE_REVIEW_OUTBOX_MAX="50",
    ).review
    assert review is not None
    assert review.policy == ReviewPolicy(mode="held", confidence_below=0.8)
    assert review.deployment == 12 and review.version == 3
    assert review.url == "http://portal.example/api/v1/reviews/"
    assert review.outbox_dir == Path("/var/outbox") and review.outbox_max == 50
    assert review.token == "mp_secret_token_value"
    # The token is a secret: never in a repr (that ends up in tracebacks and logs).
    assert "mp_secret_token_value" not in repr(review)
    assert "mp_secret_token_value" not in repr(_settings(**REVIEW_ENV))


def test_the_control_planes_selection_json_is_understood():
    # The exact shape deployments.review_policy.serving_selection writes.
    text = (
        '{"all":false,"classes":["declined","closed"],"confidence_below":0.6,'
        '"mode":"audited","sample_percent":2.5}'
    )
    policy = ReviewPolicy.from_json(text)
    assert policy == ReviewPolicy(
        mode="audited",
        all=False,
        confidence_below=0.6,
        sample_percent=2.5,
        classes=frozenset({"declined", "closed"}),
    )
    assert not policy.held and policy.enabled


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODELPLANE_REVIEW_POLICY": "{not json"}, "MODELPLANE_REVIEW_POLICY must be a JSON"),
        ({"MODELPLANE_REVIEW_POLICY": "[1]"}, "MODELPLANE_REVIEW_POLICY must be a JSON"),
        ({"MODELPLANE_REVIEW_POLICY": '{"all": true, "later": 1}'}, "POLICY.later is not"),
        ({"MODELPLANE_REVIEW_POLICY": '{"mode": "maybe", "all": true}'}, "POLICY.mode"),
        ({"MODELPLANE_REVIEW_POLICY": '{"all": "yes"}'}, "POLICY.all"),
        ({"MODELPLANE_REVIEW_POLICY": '{"confidence_below": 2}'}, "POLICY.confidence_below"),
        ({"MODELPLANE_REVIEW_POLICY": '{"sample_percent": 101}'}, "POLICY.sample_percent"),
        ({"MODELPLANE_REVIEW_POLICY": '{"classes": "declined"}'}, "POLICY.classes"),
        ({"MODELPLANE_REVIEW_URL": ""}, "MODELPLANE_REVIEW_URL is required"),
        ({"MODELPLANE_REVIEW_URL": "ftp://x/"}, "MODELPLANE_REVIEW_URL must be an http(s)"),
        ({"MODELPLANE_REVIEW_URL": "https://u:p@x/"}, "must not carry credentials"),
        ({"MODELPLANE_REVIEW_DEPLOYMENT": ""}, "MODELPLANE_REVIEW_DEPLOYMENT"),
        ({"MODELPLANE_REVIEW_DEPLOYMENT": "abc"}, "MODELPLANE_REVIEW_DEPLOYMENT"),
        ({"MODEL_VERSION": "latest"}, "MODEL_VERSION must be the model version's number"),
        ({"MODELPLANE_REVIEW_OUTBOX_MAX": "0"}, "MODELPLANE_REVIEW_OUTBOX_MAX must be >= 1"),
    ],
)
def test_a_policy_without_what_it_needs_refuses_to_start(env: dict[str, str], message: str):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _settings(**{**REVIEW_ENV, **env})


# ------------------------------------------------------------------ selection


def _proba(*rows: float) -> np.ndarray:
    """Binary probabilities whose first column is each given value."""
    return np.asarray([[p, 1.0 - p] for p in rows])


def test_all_marks_every_row_high_risk():
    selector = PolicySelector(ReviewPolicy(all=True, confidence_below=0.9, classes=frozenset("a")))
    assert selector.select(["a", "b"], _proba(0.5, 0.99)) == [(0, HIGH_RISK), (1, HIGH_RISK)]


def test_confidence_below_the_threshold_is_low_confidence():
    selector = PolicySelector(ReviewPolicy(confidence_below=0.8))
    # max(p, 1-p): 0.7 -> 0.7 (selected), 0.9 -> 0.9, 0.2 -> 0.8 (not below), 0.45 -> 0.55.
    assert selector.select(["a", "a", "b", "b"], _proba(0.7, 0.9, 0.2, 0.45)) == [
        (0, LOW_CONFIDENCE),
        (3, LOW_CONFIDENCE),
    ]


def test_listed_classes_are_class_listed():
    selector = PolicySelector(ReviewPolicy(classes=frozenset({"declined", "7"})))
    assert selector.select(["approved", "declined", 7], _proba(0.99, 0.99, 0.99)) == [
        (1, CLASS_LISTED),
        (2, CLASS_LISTED),
    ]


def test_the_first_matching_reason_wins():
    policy = ReviewPolicy(confidence_below=0.8, classes=frozenset({"declined"}), sample_percent=100)
    selector = PolicySelector(policy)
    rows = selector.select(["declined", "declined", "approved"], _proba(0.6, 0.95, 0.99))
    assert rows == [(0, LOW_CONFIDENCE), (1, CLASS_LISTED), (2, SAMPLED)]


def test_a_regressor_has_no_confidence_to_select_on():
    selector = PolicySelector(ReviewPolicy(confidence_below=0.99))
    assert selector.select([1.5, 2.5], None) == []


@pytest.mark.parametrize("percent", [0.5, 10.0, 50.0])
def test_sampling_selects_the_given_share(percent: float):
    rows = 40_000
    selector = PolicySelector(ReviewPolicy(sample_percent=percent), random.Random(20240611))
    labels = ["a"] * rows
    selected = selector.select(labels, _proba(*([0.99] * rows)))
    assert {reason for _, reason in selected} == {SAMPLED}
    p = percent / 100
    sd = math.sqrt(rows * p * (1 - p))
    # Five standard deviations: a correct sampler fails this about once in 3.5 million runs.
    assert abs(len(selected) - rows * p) < 5 * sd, (len(selected), rows * p)


def test_sampling_is_independent_between_rows_and_selectors():
    a = PolicySelector(ReviewPolicy(sample_percent=50)).select(["x"] * 200, None)
    b = PolicySelector(ReviewPolicy(sample_percent=50)).select(["x"] * 200, None)
    assert a != b  # unseeded selectors draw their own numbers (p = 2**-200 of a false failure)
    assert PolicySelector(ReviewPolicy(sample_percent=0)).select(["x"] * 500, None) == []
    assert len(PolicySelector(ReviewPolicy(sample_percent=100)).select(["x"] * 500, None)) == 500


# ------------------------------------------------------------------ ids and bodies


def test_refs_are_fresh_and_fit_the_api():
    refs = {new_ref() for _ in range(1000)}
    assert len(refs) == 1000
    assert all(r.startswith("rv_") and 16 <= len(r) - 3 <= 60 for r in refs)


def test_row_request_ids():
    assert row_request_id("req-1", 0, 1) == "req-1"
    assert row_request_id("req-1", 3, 8) == "req-1/3"
    long = "x" * 128
    assert row_request_id(long, 0, 1) == long
    assert len(row_request_id(long, 255, 256)) <= 128
    assert row_request_id(long, 2, 3) == row_request_id(long, 2, 3)  # stable
    assert row_request_id(long, 2, 3) != row_request_id("y" * 128, 2, 3)


def test_the_default_outbox_dir_is_named_by_what_the_process_serves(tmp_path: Path):
    path = default_outbox_dir(deployment=4, model="credit/risk model", version=7, track="canary")
    assert path.name == "d4-credit_risk_model-v7-canary"
    assert path == default_outbox_dir(
        deployment=4, model="credit/risk model", version=7, track="canary"
    )


def test_held_rows_are_null_in_every_infer_output():
    payload = {
        "model_name": "m",
        "id": "r",
        "outputs": [
            {"name": "label", "datatype": "BYTES", "shape": [3], "data": ["a", "b", "a"]},
            {
                "name": "probabilities",
                "datatype": "FP64",
                "shape": [3, 2],
                "data": [0.9, 0.1, 0.4, 0.6, 0.8, 0.2],
            },
        ],
    }
    labels = payload["outputs"][0]["data"]
    reviews = [{"row": 1, "ref": "rv_x", "reason": "low_confidence", "url": "u/rv_x/"}]
    held = hold_infer_payload(payload, reviews)
    assert held["outputs"][0]["data"] == ["a", None, "a"]
    assert held["outputs"][1]["data"] == [0.9, 0.1, None, None, 0.8, 0.2]
    assert held["status"] == "pending_review" and held["reviews"] == reviews
    assert labels == ["a", "b", "a"]  # the prediction's own list is not changed


def test_held_rows_are_null_in_a_predict_answer():
    payload = {
        "predictions": ["a", "b"],
        "probabilities": [{"a": 0.9, "b": 0.1}, {"a": 0.4, "b": 0.6}],
        "model": "m",
        "version": "3",
    }
    reviews = [{"row": 0, "ref": "rv_y", "reason": "high_risk", "url": "u/rv_y/"}]
    held = hold_predict_payload(payload, reviews)
    assert held["predictions"] == [None, "b"]
    assert held["probabilities"] == [None, {"a": 0.4, "b": 0.6}]
    assert held["status"] == "pending_review"


# ------------------------------------------------------------------ packages and items


@pytest.fixture(scope="module")
def reviewable(tmp_path_factory: pytest.TempPathFactory) -> PackageInfo:
    data = load_demo_data()
    return package_sklearn(
        train(1),
        data.X,
        name=MODEL_NAME,
        features=FEATURES,
        out_path=tmp_path_factory.mktemp("reviewable") / "v1.zip",
        review_summary=SUMMARY,
        review_explanation=True,
    )


@pytest.fixture(scope="module")
def reviewable_model(reviewable: PackageInfo) -> LoadedModel:
    return load_package(reviewable.path, reviewable.digest)


def _columns(rows: list[dict[str, Any]]) -> dict[str, list]:
    return {spec.name: [r[spec.name] for r in rows] for spec in FEATURES}


def test_a_package_declares_its_review_summary_and_explanation(reviewable, reviewable_model):
    manifest = read_manifest(reviewable.path)
    assert manifest["review_summary"] == SUMMARY
    assert manifest["review_explanation"] == "linear_contributions"
    assert reviewable_model.review_summary == tuple(SUMMARY)


def test_the_explanation_adds_up_to_the_models_decision(tmp_path: Path, reviewable_model):
    # With every feature in the summary, intercept + contributions is the model's log-odds.
    every = [spec.name for spec in FEATURES]
    pipeline = train(1)
    info = package_sklearn(
        pipeline,
        load_demo_data().X,
        name=MODEL_NAME,
        features=FEATURES,
        out_path=tmp_path / "all.zip",
        review_summary=every,
        review_explanation=True,
    )
    model = load_package(info.path, info.digest)
    rows = sample_requests(20, seed=3)
    prediction = model.predict_columns(_columns(rows))
    X = np.asarray([[r[n] for n in every] for r in rows], dtype=object)
    decision = pipeline.decision_function(X)
    for row in range(len(rows)):
        explanation = model.explain(prediction, row)
        assert explanation is not None and explanation["method"] == "linear_contributions"
        total = explanation["intercept"] + sum(explanation["contributions"].values())
        # Toward the predicted class: classes_[1]'s log-odds, negated when class 0 won.
        sign = 1.0 if prediction.labels[row] == pipeline.classes_[1] else -1.0
        assert total == pytest.approx(sign * decision[row], abs=1e-4)
        assert total > 0  # the predicted class is the favoured one
    # Predictions are the plain pipeline's: keeping the model inputs changes nothing.
    assert prediction.labels == pipeline.predict(X).tolist()
    np.testing.assert_allclose(prediction.probabilities, pipeline.predict_proba(X))


def test_the_explanation_covers_only_the_summary(reviewable_model):
    prediction = reviewable_model.predict_columns(_columns(sample_requests(1, seed=1)))
    explanation = reviewable_model.explain(prediction, 0)
    assert explanation is not None
    assert set(explanation["contributions"]) == set(SUMMARY)


def test_packages_without_an_explanation_explain_nothing(loaded):
    model = loaded["sklearn-skops"]
    prediction = model.predict_columns(_columns(sample_requests(1, seed=1)))
    assert model.explain(prediction, 0) is None and model.review_summary == ()
    assert prediction.model_inputs is None


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"review_summary": ["radius_mean", "nope"]}, "invalid_manifest"),
        ({"review_summary": ["radius_mean", "radius_mean"]}, "invalid_manifest"),
        ({"review_explanation": True}, "invalid_manifest"),
        (
            {"review_summary": SUMMARY, "review_explanation": True, "format": "onnx"},
            "unsupported_explanation",
        ),
        ({"review_summary": SUMMARY, "review_explanation": True, "version": 2}, "unsupported"),
    ],
)
def test_bad_review_declarations_are_refused_when_packaging(tmp_path: Path, kwargs, reason):
    version = kwargs.pop("version", 1)
    with pytest.raises(PackageError) as caught:
        package_sklearn(
            train(version),
            load_demo_data().X,
            name=MODEL_NAME,
            features=FEATURES,
            out_path=tmp_path / "bad.zip",
            **kwargs,
        )
    assert caught.value.reason.startswith(reason)
    assert not (tmp_path / "bad.zip").exists()


class _Outbox:
    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []
        self.depth = 0
        self.max_items = 10

    def append(self, items):  # type: ignore[no-untyped-def]
        self.items.extend(items)
        return None


class _Sender:
    def notify(self) -> None:
        pass


class _Metrics:
    def __init__(self) -> None:
        self.selected_rows: list[tuple[str, str]] = []

    def selected(self, mode: str, reason: str, count: int = 1) -> None:
        self.selected_rows.append((mode, reason))


def test_an_item_carries_the_contract_fields_and_only_the_summary(reviewable_model):
    import json

    review = ReviewSettings(
        policy=ReviewPolicy(mode="audited", all=True),
        url="http://portal.example/api/v1/reviews",
        deployment=12,
        version=3,
    )
    outbox, metrics = _Outbox(), _Metrics()
    reviewer = Reviewer(
        settings=review,
        model=reviewable_model,
        name="breast-cancer",
        track="canary",
        outbox=outbox,  # type: ignore[arg-type]
        sender=_Sender(),  # type: ignore[arg-type]
        metrics=metrics,  # type: ignore[arg-type]
        log=None,
    )
    rows = sample_requests(2, seed=9)
    columns = _columns(rows)
    prediction = reviewable_model.predict_columns(columns)
    # Audited: nothing held, both rows queued.
    assert reviewer.review(columns, prediction, "req-9") is None
    assert metrics.selected_rows == [("audited", "high_risk")] * 2
    bodies = [json.loads(body) for _, body in outbox.items]
    first = bodies[0]
    assert set(first) == {
        "ref",
        "deployment",
        "model",
        "version",
        "track",
        "request_id",
        "mode",
        "reason",
        "prediction",
        "confidence",
        "input_summary",
        "explanation",
    }
    assert first["ref"] == outbox.items[0][0]
    assert (first["deployment"], first["model"], first["version"], first["track"]) == (
        12,
        "breast-cancer",
        3,
        "canary",
    )
    assert [b["request_id"] for b in bodies] == ["req-9/0", "req-9/1"]
    assert (first["mode"], first["reason"]) == ("audited", "high_risk")
    probabilities = prediction.probabilities[0].tolist()
    assert first["prediction"] == {
        "label": prediction.labels[0],
        "probabilities": dict(zip(["benign", "malignant"], probabilities, strict=True)),
    }
    assert first["confidence"] == max(probabilities)
    assert first["input_summary"] == {k: rows[0][k] for k in SUMMARY}
    assert set(first["explanation"]["contributions"]) == set(SUMMARY)


def test_a_prediction_with_many_classes_carries_only_the_most_probable():
    class ManyClasses:
        classes = [f"c{i}" for i in range(80)]
        review_summary = ()
        manifest: dict[str, Any] = {}

    review = ReviewSettings(
        policy=ReviewPolicy(all=True), url="http://portal.example/r/", deployment=1, version=1
    )
    reviewer = Reviewer(
        settings=review,
        model=ManyClasses(),  # type: ignore[arg-type]
        name="m",
        track="stable",
        outbox=_Outbox(),  # type: ignore[arg-type]
        sender=_Sender(),  # type: ignore[arg-type]
        metrics=_Metrics(),  # type: ignore[arg-type]
        log=None,
    )
    probabilities = np.linspace(1, 80, 80)
    probabilities /= probabilities.sum()
    prediction = Prediction(labels=["c79"], probabilities=probabilities.reshape(1, -1))
    item = reviewer.item("rv_" + "a" * 22, 0, HIGH_RISK, {}, prediction, 1, "r")
    kept = item["prediction"]["probabilities"]
    assert len(kept) == 50 and set(kept) == {f"c{i}" for i in range(30, 80)}
    assert item["confidence"] == max(probabilities) and item["input_summary"] == {}
