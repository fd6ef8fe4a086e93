"""The package format: manifest contract, baseline profile shape, digests and safe loading."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from serving.demo_model import FEATURES, build_pipeline, load_demo_data
from serving.packaging import (
    DigestMismatch,
    FeatureSpec,
    PackageError,
    PackageInfo,
    UntrustedModel,
    baseline_profile,
    bucket_counts,
    file_digest,
    load_package,
    package_sklearn,
    read_manifest,
)


def _double(x: np.ndarray) -> np.ndarray:
    return x * 2


def test_it_writes_a_zip_with_manifest_and_model(skops_v1: PackageInfo, onnx_v1: PackageInfo):
    with zipfile.ZipFile(skops_v1.path) as zf:
        assert sorted(zf.namelist()) == ["manifest.json", "model.skops"]
    with zipfile.ZipFile(onnx_v1.path) as zf:
        assert sorted(zf.namelist()) == ["manifest.json", "model.onnx"]
    assert read_manifest(onnx_v1.path)["format"] == "onnx"


def test_manifest_has_the_contract_keys(skops_v1: PackageInfo):
    manifest = skops_v1.manifest
    assert manifest["format"] == "sklearn-skops"
    assert manifest["name"] == "breast-cancer"
    assert manifest["task"] == "classification"
    assert manifest["feature_names"] == [f.name for f in FEATURES]
    assert manifest["classes"] == ["benign", "malignant"]
    assert manifest["output_schema"]["enum"] == ["benign", "malignant"]
    assert manifest["example_requests"][0]["instances"]
    assert read_manifest(skops_v1.path) == json.loads(json.dumps(manifest))


def test_input_schema_is_strict_json_schema_that_accepts_the_examples(skops_v1: PackageInfo):
    schema = skops_v1.manifest["input_schema"]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert schema["required"] == skops_v1.manifest["feature_names"]
    assert schema["properties"]["size_band"]["enum"] == ["small", "medium", "large"]
    radius = schema["properties"]["radius_mean"]
    assert radius["type"] == "number" and radius["minimum"] == 0.0
    assert radius["maximum"] > float(load_demo_data().X[:, 0].max())
    validator = jsonschema.Draft202012Validator(schema)
    for example in skops_v1.manifest["example_requests"]:
        for instance in example["instances"]:
            validator.validate(instance)


def test_baseline_profile_has_the_shape_the_control_plane_stores(skops_v1: PackageInfo):
    profile = skops_v1.manifest["baseline_profile"]
    rows = len(load_demo_data().X)
    assert profile["rows"] == rows
    for name, feature in profile["features"].items():
        if name == "size_band":
            assert feature["type"] == "categorical"
            assert set(feature["frequencies"]) == {"small", "medium", "large"}
            assert sum(feature["frequencies"].values()) == rows
        else:
            assert feature["type"] == "numeric"
            edges, counts = feature["bin_edges"], feature["counts"]
            assert len(edges) == len(counts) + 1
            assert 5 <= len(counts) <= 10
            assert edges == sorted(edges) and len(set(edges)) == len(edges)
            assert sum(counts) == rows
    prediction = profile["prediction"]
    assert prediction["type"] == "categorical"
    assert set(prediction["frequencies"]) == {"benign", "malignant"}
    assert sum(prediction["frequencies"].values()) == rows


def test_baseline_profile_is_quantile_based():
    values = np.arange(1000, dtype=float)
    profile = baseline_profile(values.reshape(-1, 1), {"x": "numeric"}, values)
    counts = profile["features"]["x"]["counts"]
    assert len(counts) == 10 and max(counts) - min(counts) <= 1
    assert profile["prediction"]["type"] == "numeric"


def test_bucket_counts_put_a_value_on_an_edge_in_the_lower_bin():
    # Prometheus `le` semantics: (e_i, e_i+1]; below the first edge / above the last stay in.
    assert bucket_counts(np.array([-5.0, 0.0, 1.0, 1.5, 2.0, 99.0]), [0.0, 1.0, 2.0, 3.0]) == [
        3,
        2,
        1,
    ]


def test_file_digest_is_the_sha256_of_the_file(skops_v1: PackageInfo):
    expected = hashlib.sha256(skops_v1.path.read_bytes()).hexdigest()
    assert file_digest(skops_v1.path) == f"sha256:{expected}" == skops_v1.digest


def test_it_refuses_a_package_whose_digest_differs(skops_v1: PackageInfo, onnx_v1: PackageInfo):
    with pytest.raises(DigestMismatch) as excinfo:
        load_package(skops_v1.path, onnx_v1.digest)
    assert excinfo.value.expected == onnx_v1.digest
    assert excinfo.value.actual == skops_v1.digest
    assert onnx_v1.digest in str(excinfo.value) and skops_v1.digest in str(excinfo.value)


def test_it_rejects_a_malformed_expected_digest(skops_v1: PackageInfo):
    with pytest.raises(PackageError) as excinfo:
        load_package(skops_v1.path, "md5:abc")
    assert excinfo.value.reason == "invalid_digest"


def test_it_refuses_skops_types_outside_the_allow_list(tmp_path: Path):
    data = load_demo_data()
    X = data.X[:, :7].astype(float)
    pipeline = Pipeline([("f", FunctionTransformer(_double)), ("m", LinearRegression())])
    pipeline.fit(X, X[:, 0])
    info = package_sklearn(
        pipeline, X, name="untrusted", features=FEATURES[:7], out_path=tmp_path / "u.zip"
    )
    with pytest.raises(UntrustedModel) as excinfo:
        load_package(info.path, info.digest)
    assert any("_double" in t for t in excinfo.value.types)


def test_regressor_packages_profile_numeric_predictions(tmp_path: Path):
    data = load_demo_data()
    X = data.X[:, :7].astype(float)
    pipeline = Pipeline(
        [
            ("pre", ColumnTransformer([("num", StandardScaler(), list(range(7)))])),
            ("m", LinearRegression()),
        ]
    ).fit(X, X[:, 6] * 0.5)
    info = package_sklearn(
        pipeline, X, name="area", features=FEATURES[:7], out_path=tmp_path / "r.zip", format="onnx"
    )
    assert info.manifest["task"] == "regression" and "classes" not in info.manifest
    assert info.manifest["baseline_profile"]["prediction"]["type"] == "numeric"
    model = load_package(info.path, info.digest)
    columns = {spec.name: X[:3, j].tolist() for j, spec in enumerate(FEATURES[:7])}
    prediction = model.predict_columns(columns)
    assert prediction.probabilities is None
    np.testing.assert_allclose(prediction.labels, X[:3, 6] * 0.5, rtol=1e-3)


def test_onnx_packaging_explains_the_pipeline_it_needs(tmp_path: Path):
    X = load_demo_data().X[:, :7].astype(float)
    pipeline = Pipeline([("m", LinearRegression())]).fit(X, X[:, 0])
    with pytest.raises(PackageError) as excinfo:
        package_sklearn(
            pipeline, X, name="r", features=FEATURES[:7], out_path=tmp_path / "x.zip", format="onnx"
        )
    assert excinfo.value.reason == "unsupported_pipeline"


def test_skops_and_onnx_packages_predict_the_same(loaded):
    data = load_demo_data()
    columns = {spec.name: data.X[:50, j].tolist() for j, spec in enumerate(FEATURES)}
    skops = loaded["sklearn-skops"].predict_columns(columns)
    onnx = loaded["onnx"].predict_columns(columns)
    assert skops.labels == onnx.labels
    np.testing.assert_allclose(skops.probabilities, onnx.probabilities, atol=1e-4)
    reference = build_pipeline(1).fit(data.X, data.y).predict(data.X[:50])
    assert skops.labels == reference.tolist()


def test_it_rejects_a_file_that_is_not_a_package(tmp_path: Path):
    bogus = tmp_path / "bogus.zip"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(PackageError) as excinfo:
        load_package(bogus, file_digest(bogus))
    assert excinfo.value.reason == "not_a_package"


def test_feature_spec_bounds_override_the_derived_ones(tmp_path: Path):
    data = load_demo_data()
    X = data.X[:, :1].astype(float)
    pipeline = Pipeline([("m", LinearRegression())]).fit(X, X[:, 0])
    spec = FeatureSpec(name="radius_mean", type="numeric", minimum=5.0, maximum=40.0)
    info = package_sklearn(pipeline, X, name="r", features=[spec], out_path=tmp_path / "b.zip")
    prop = info.manifest["input_schema"]["properties"]["radius_mean"]
    assert (prop["minimum"], prop["maximum"]) == (5.0, 40.0)
