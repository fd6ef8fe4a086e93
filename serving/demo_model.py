"""The demo model: a small real classifier on scikit-learn's bundled breast-cancer data.

Builds two packaged versions (v1 logistic regression, v2 gradient boosting) and generates realistic
request rows, optionally drifted, for the traffic generator. `build_wine_package` packages an
all-numeric pipeline (the wine data) for clients that send one `[batch, n_features]` FP64 tensor,
as KServe's sklearn server takes it. It only uses data that ships with
scikit-learn: it must never download anything.

CLI: `python -m serving.demo_model build OUT_DIR [--format onnx]` prints the package infos as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from serving.packaging import FeatureSpec, PackageFormat, PackageInfo, package_sklearn

MODEL_NAME = "breast-cancer"

# (readable name, column in sklearn's dataset, description)
NUMERIC_FEATURES: tuple[tuple[str, str, str], ...] = (
    ("radius_mean", "mean radius", "mean distance from centre to perimeter (mm)"),
    ("texture_mean", "mean texture", "standard deviation of grey-scale values"),
    ("smoothness_mean", "mean smoothness", "local variation in radius lengths"),
    ("compactness_mean", "mean compactness", "perimeter^2 / area - 1.0"),
    ("concavity_mean", "mean concavity", "severity of concave portions of the contour"),
    ("symmetry_mean", "mean symmetry", "symmetry of the nucleus"),
    ("area_worst", "worst area", "largest nucleus area (mm^2)"),
)
CATEGORICAL_FEATURE = "size_band"
SIZE_BANDS = ("small", "medium", "large")
# Drift shifts these numeric features by +1.5 standard deviations and skews the size band.
DRIFTED_FEATURES = ("radius_mean", "texture_mean", "concavity_mean", "area_worst")
DRIFT_SHIFT_STD = 1.5
DRIFT_BAND_WEIGHTS = (0.1, 0.3, 0.6)

FEATURES: tuple[FeatureSpec, ...] = (
    *(FeatureSpec(name=n, type="numeric", description=d) for n, _, d in NUMERIC_FEATURES),
    FeatureSpec(
        name=CATEGORICAL_FEATURE,
        type="categorical",
        categories=SIZE_BANDS,
        description="nucleus size band derived from the mean perimeter (40th/80th percentile)",
    ),
)


@dataclass(frozen=True)
class DemoData:
    X: np.ndarray  # object array, columns in FEATURES order
    y: np.ndarray  # class names
    numeric_std: np.ndarray
    numeric_min: np.ndarray


@lru_cache(maxsize=1)
def load_demo_data() -> DemoData:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = list(data.feature_names)
    numeric = data.data[:, [names.index(col) for _, col, _ in NUMERIC_FEATURES]]
    perimeter = data.data[:, names.index("mean perimeter")]
    low, high = np.quantile(perimeter, [0.4, 0.8])
    band = np.where(perimeter <= low, "small", np.where(perimeter <= high, "medium", "large"))
    X = np.empty((len(numeric), len(FEATURES)), dtype=object)
    X[:, : len(NUMERIC_FEATURES)] = numeric
    X[:, len(NUMERIC_FEATURES)] = band
    y = np.asarray(data.target_names)[data.target]
    return DemoData(X=X, y=y, numeric_std=numeric.std(axis=0), numeric_min=numeric.min(axis=0))


def build_pipeline(version: int) -> Any:
    """v1: scaled logistic regression; v2: gradient boosting (a genuinely different model)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    n_numeric = len(NUMERIC_FEATURES)
    # Integer column indices (not names): the service feeds an object array, and skl2onnx maps
    # the indices onto one ONNX input per feature.
    preprocess = ColumnTransformer(
        [
            ("numeric", StandardScaler(), list(range(n_numeric))),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), [n_numeric]),
        ]
    )
    if version == 1:
        model: Any = LogisticRegression(C=1.0, max_iter=1000)
    else:
        model = GradientBoostingClassifier(n_estimators=40, max_depth=2, random_state=version)
    return Pipeline([("preprocess", preprocess), ("model", model)])


def train(version: int) -> Any:
    data = load_demo_data()
    return build_pipeline(version).fit(data.X, data.y)


def build_demo_versions(
    out_dir: str | Path, *, format: PackageFormat = "sklearn-skops"
) -> list[PackageInfo]:
    """Train and package v1 and v2 into `out_dir`; returns their infos in version order."""
    data = load_demo_data()
    out = Path(out_dir)
    suffix = "onnx" if format == "onnx" else "skops"
    infos = []
    for version in (1, 2):
        infos.append(
            package_sklearn(
                train(version),
                data.X,
                name=MODEL_NAME,
                features=FEATURES,
                out_path=out / f"{MODEL_NAME}-v{version}-{suffix}.zip",
                format=format,
            )
        )
    return infos


WINE_MODEL_NAME = "wine"


def build_wine_package(out_dir: str | Path, *, format: PackageFormat = "sklearn-skops") -> Any:
    """A scaled logistic regression on scikit-learn's wine data (13 numeric features, classes 0,
    1 and 2), packaged into `out_dir`. Returns (package info, fitted pipeline, feature matrix)."""
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_wine()
    # Names usable as JSON keys and tensor names: "od280/od315_of_diluted_wines" has a slash.
    names = [n.replace("/", "_") for n in data.feature_names]
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("model", LogisticRegression(C=1.0, max_iter=1000))]
    )
    # Integer classes, as in the dataset: KServe's sklearn server cannot answer string labels.
    pipeline.fit(data.data, data.target)
    suffix = "onnx" if format == "onnx" else "skops"
    info = package_sklearn(
        pipeline,
        data.data,
        name=WINE_MODEL_NAME,
        features=[FeatureSpec(name=n, type="numeric") for n in names],
        out_path=Path(out_dir) / f"{WINE_MODEL_NAME}-{suffix}.zip",
        format=format,
    )
    return info, pipeline, data.data


def sample_requests(n: int, drift: bool = False, seed: int | None = None) -> list[dict[str, Any]]:
    """`n` request rows resampled from the dataset with a little noise; with `drift`, several
    numeric features move up by 1.5 standard deviations and large nuclei dominate."""
    data = load_demo_data()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(data.X), size=n)
    n_numeric = len(NUMERIC_FEATURES)
    numeric = data.X[idx, :n_numeric].astype(float)
    numeric += rng.normal(0.0, 0.05, size=numeric.shape) * data.numeric_std
    bands = data.X[idx, n_numeric].astype(str)
    if drift:
        for j, (name, _, _) in enumerate(NUMERIC_FEATURES):
            if name in DRIFTED_FEATURES:
                numeric[:, j] += DRIFT_SHIFT_STD * data.numeric_std[j]
        bands = rng.choice(np.asarray(SIZE_BANDS), size=n, p=DRIFT_BAND_WEIGHTS)
    # Measurements are non-negative; noise must not produce values the schema rejects.
    numeric = np.maximum(numeric, 0.0)
    rows = []
    for i in range(n):
        row: dict[str, Any] = {
            name: round(float(numeric[i, j]), 5) for j, (name, _, _) in enumerate(NUMERIC_FEATURES)
        }
        row[CATEGORICAL_FEATURE] = str(bands[i])
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.demo_model")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="train and package demo versions v1 and v2")
    build.add_argument("out_dir", type=Path)
    build.add_argument("--format", choices=("sklearn-skops", "onnx"), default="sklearn-skops")
    args = parser.parse_args(argv)
    infos = build_demo_versions(args.out_dir, format=args.format)
    payload = [{"version": f"v{i}", **info.as_dict()} for i, info in enumerate(infos, start=1)]
    json.dump(payload, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
