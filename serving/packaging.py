"""The model package: one zip per model version holding `manifest.json` and the model.

Writes packages (`package_sklearn`), profiles reference data (`baseline_profile`) and loads packages
(`load_package`) after checking their sha256 digest. It must never load a model whose digest differs
from the expected one, and never unpickle or skops-load types outside an explicit allow-list.
This module is shared by the inference service and the tooling that builds packages; it must not
import Django or anything from the control plane.

For human review a package may declare `review_summary` (the features kept in a review item's
input summary; every other feature is never sent) and `review_explanation`
("linear_contributions": per-feature contributions of a linear model, for the summary's features
only, so an explanation never reveals a feature the summary leaves out).
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

PackageFormat = Literal["sklearn-skops", "onnx"]
Task = Literal["classification", "regression"]
FeatureType = Literal["numeric", "categorical"]

MANIFEST_NAME = "manifest.json"
MODEL_MEMBERS: dict[str, str] = {"sklearn-skops": "model.skops", "onnx": "model.onnx"}
PACKAGE_FORMATS: tuple[str, ...] = tuple(MODEL_MEMBERS)
DEFAULT_BINS = 10

# skops refuses any type it does not trust by default; these are the extra types we accept.
# Everything else (custom classes, functions, arbitrary builtins) makes loading fail loudly.
SKOPS_TRUSTED_TYPES: frozenset[str] = frozenset({"sklearn.tree._tree.Tree"})

# The review API takes at most 50 input summary fields per item.
REVIEW_SUMMARY_MAX_FIELDS = 50
EXPLANATION_METHODS: tuple[str, ...] = ("linear_contributions",)

# A package is small (a manifest and one model); refuse zip members that inflate beyond this.
MAX_MEMBER_BYTES = 1024 * 1024 * 1024
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


class PackageError(Exception):
    """The package cannot be written or loaded; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class DigestMismatch(PackageError):
    """The artifact's sha256 differs from the digest the control plane registered."""

    def __init__(self, *, expected: str, actual: str, path: str) -> None:
        super().__init__(
            "digest_mismatch",
            f"artifact {path} has digest {actual}, expected {expected}: refusing to load it",
        )
        self.expected = expected
        self.actual = actual


class UntrustedModel(PackageError):
    """The skops file contains types outside the allow-list."""

    def __init__(self, types: Sequence[str]) -> None:
        super().__init__(
            "untrusted_types",
            "model contains types outside the allow-list: " + ", ".join(sorted(types)),
        )
        self.types = list(types)


@dataclass(frozen=True)
class FeatureSpec:
    """One model input. Unset bounds/categories are derived from the reference data."""

    name: str
    type: FeatureType
    minimum: float | None = None
    maximum: float | None = None
    categories: Sequence[str] | None = None
    description: str = ""


@dataclass(frozen=True)
class PackageInfo:
    path: Path
    digest: str
    manifest: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "digest": self.digest, "manifest": self.manifest}


@dataclass
class Prediction:
    """Model output for a batch: `labels` (class or value per row), `probabilities` for classifiers
    (rows x classes, in the manifest's class order)."""

    labels: list[Any]
    probabilities: np.ndarray | None = None
    # The batch as the final estimator saw it (after preprocessing); kept only when the package
    # declares an explanation, so explaining a row costs a dot product, not a second transform.
    model_inputs: Any = field(default=None, repr=False)


@dataclass
class LoadedModel:
    """A verified, loaded package ready to predict on rows in manifest feature order."""

    manifest: dict[str, Any]
    digest: str
    path: Path
    _runner: _Runner = field(repr=False)

    @property
    def format(self) -> str:
        return str(self.manifest["format"])

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def task(self) -> str:
        return str(self.manifest["task"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest["feature_names"])

    @property
    def classes(self) -> list[Any]:
        return list(self.manifest.get("classes") or [])

    @property
    def review_summary(self) -> tuple[str, ...]:
        """The features a review item's input summary keeps (none when undeclared)."""
        return tuple(self.manifest.get("review_summary") or ())

    def predict_columns(self, columns: Mapping[str, Sequence[Any]]) -> Prediction:
        """Predict from one sequence of values per feature (all the same length)."""
        return self._runner.predict(columns)

    def explain(self, prediction: Prediction, row: int) -> dict[str, Any] | None:
        """The explanation of one predicted row for a reviewer, or None when the package declares
        none (or its format cannot provide one)."""
        return self._runner.explain(prediction, row)


# --------------------------------------------------------------------------- digests


def file_digest(path: str | Path) -> str:
    """sha256 of a file as `sha256:<hex>`, streamed so large artifacts use constant memory."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def normalize_digest(digest: str) -> str:
    """Accept `sha256:<hex>` or a bare 64-hex string; return `sha256:<lowercase hex>`."""
    value = digest.strip().lower()
    if value.startswith("sha256:"):
        value = value[len("sha256:") :]
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise PackageError("invalid_digest", f"not a sha256 digest: {digest!r}")
    return f"sha256:{value}"


# --------------------------------------------------------------------------- profiles


def _numeric_edges(values: np.ndarray, bins: int) -> list[float]:
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) < 2:
        # A constant column still needs one bin with two distinct edges.
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    # 10 significant digits: readable edges, no float noise like 384.71999999999997.
    return [float(f"{e:.10g}") for e in edges]


def bucket_counts(values: np.ndarray, edges: Sequence[float]) -> list[int]:
    """Counts per bin with Prometheus `le` semantics: bin i holds (e_i, e_i+1], the first bin is
    open below and the last open above, so live histograms and the baseline count identically."""
    inner = np.asarray(edges[1:-1], dtype=float)
    idx = np.searchsorted(inner, np.asarray(values, dtype=float), side="left")
    return [int(c) for c in np.bincount(idx, minlength=len(edges) - 1)]


def _numeric_profile(values: np.ndarray, bins: int) -> dict[str, Any]:
    edges = _numeric_edges(values, bins)
    return {"type": "numeric", "bin_edges": edges, "counts": bucket_counts(values, edges)}


def _categorical_profile(values: Sequence[Any]) -> dict[str, Any]:
    freq = Counter(str(v) for v in values)
    return {"type": "categorical", "frequencies": dict(sorted(freq.items()))}


def baseline_profile(
    X: Any,
    feature_types: Mapping[str, FeatureType],
    predictions: Sequence[Any] | np.ndarray,
    *,
    prediction_type: FeatureType | None = None,
    bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """Profile reference inputs and predictions in the shape the control plane stores.

    `X` is a 2-D array (columns in `feature_types` order) or a mapping of feature name to column.
    `prediction_type` defaults to numeric for float predictions and categorical otherwise.
    """
    names = list(feature_types)
    if isinstance(X, Mapping):
        columns = {name: np.asarray(X[name]) for name in names}
    else:
        arr = np.asarray(X, dtype=object)
        if arr.ndim != 2 or arr.shape[1] != len(names):
            raise ValueError(f"X must be 2-D with {len(names)} columns, got shape {arr.shape}")
        columns = {name: arr[:, i] for i, name in enumerate(names)}
    rows = len(next(iter(columns.values()))) if columns else 0
    features: dict[str, Any] = {}
    for name in names:
        if feature_types[name] == "numeric":
            features[name] = _numeric_profile(columns[name].astype(float), bins)
        else:
            features[name] = _categorical_profile(columns[name])
    preds = np.asarray(predictions)
    if prediction_type is None:
        prediction_type = "numeric" if preds.dtype.kind == "f" else "categorical"
    if prediction_type == "numeric":
        prediction = _numeric_profile(preds.astype(float), bins)
    else:
        prediction = _categorical_profile(preds.tolist())
    return {"features": features, "prediction": prediction, "rows": int(rows)}


# --------------------------------------------------------------------------- schemas


def _round_bound(value: float) -> float:
    # Schema bounds are published to clients: keep them short and never tighter than the data.
    if value == 0 or not math.isfinite(value):
        return float(value)
    digits = 4 - math.floor(math.log10(abs(value)))
    return float(round(value, max(digits, 0)))


def input_schema(
    features: Sequence[FeatureSpec], columns: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """JSON Schema of one instance. Numeric bounds default to the observed range widened by five
    standard deviations (and floored at 0 for non-negative data), so drifted but plausible traffic
    is accepted while absurd values are rejected."""
    properties: dict[str, Any] = {}
    for spec in features:
        col = columns[spec.name]
        if spec.type == "numeric":
            values = col.astype(float)
            lo, hi, sd = float(values.min()), float(values.max()), float(values.std())
            minimum = spec.minimum
            if minimum is None:
                minimum = 0.0 if lo >= 0 else _round_bound(lo - 5 * sd)
            maximum = spec.maximum if spec.maximum is not None else _round_bound(hi + 5 * sd)
            prop: dict[str, Any] = {"type": "number", "minimum": minimum, "maximum": maximum}
        else:
            categories = (
                list(spec.categories)
                if spec.categories is not None
                else sorted({str(v) for v in col})
            )
            prop = {
                "type": "string",
                "enum": categories,
                "maxLength": max((len(c) for c in categories), default=1),
            }
        if spec.description:
            prop["description"] = spec.description
        properties[spec.name] = prop
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": [spec.name for spec in features],
        "additionalProperties": False,
    }


def _output_schema(task: Task, classes: list[Any]) -> dict[str, Any]:
    if task == "classification":
        kind = "string" if all(isinstance(c, str) for c in classes) else "integer"
        return {"type": kind, "enum": classes, "description": "predicted class of one instance"}
    return {"type": "number", "description": "predicted value of one instance"}


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------- writing


def _to_onnx(pipeline: Any, features: Sequence[FeatureSpec], task: Task) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer

    if not isinstance(pipeline.steps[0][1], ColumnTransformer):
        raise PackageError(
            "unsupported_pipeline",
            "ONNX packages need a Pipeline whose first step is a ColumnTransformer "
            "selecting columns by index (one ONNX input per feature)",
        )

    # One [batch, 1] input per feature, named like the feature: the pipeline's integer column
    # indices then map onto the inputs in order (skl2onnx concatenates them virtually).
    initial_types = [
        (f.name, FloatTensorType([None, 1]) if f.type == "numeric" else StringTensorType([None, 1]))
        for f in features
    ]
    options: dict[Any, Any] = {}
    if task == "classification":
        options = {id(pipeline.steps[-1][1]): {"zipmap": False}}
    onx = convert_sklearn(pipeline, initial_types=initial_types, options=options)
    return onx.SerializeToString()


def _write_zip(out_path: Path, manifest: dict[str, Any], member: str, model_bytes: bytes) -> None:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        # Fixed timestamps keep the digest a function of the content only.
        info = zipfile.ZipInfo(MANIFEST_NAME, date_time=_ZIP_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, json.dumps(manifest, indent=2, sort_keys=True))
        info = zipfile.ZipInfo(member, date_time=_ZIP_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, model_bytes)
    tmp.replace(out_path)


def package_sklearn(
    pipeline: Any,
    X_ref: Any,
    *,
    name: str,
    features: Sequence[FeatureSpec],
    out_path: str | Path,
    format: PackageFormat = "sklearn-skops",
    example_rows: int = 3,
    review_summary: Sequence[str] | None = None,
    review_explanation: bool = False,
) -> PackageInfo:
    """Package a fitted scikit-learn Pipeline (preprocessing included) with its manifest.

    `X_ref` is reference data as a 2-D array whose columns follow `features` (what the pipeline
    takes); it yields the input schema bounds, the baseline profile and the example requests.
    `review_summary` names the features a human review item may carry (nothing else is ever
    sent); `review_explanation` adds linear contributions of those features (sklearn-skops
    packages of a linear model only: anything else is refused here, not at serving time).
    """
    from sklearn.base import is_classifier

    if format not in MODEL_MEMBERS:
        raise PackageError("unknown_format", f"unknown package format {format!r}")
    arr = np.asarray(X_ref, dtype=object)
    if arr.ndim != 2 or arr.shape[1] != len(features):
        raise ValueError(f"X_ref must be 2-D with {len(features)} columns, got {arr.shape}")
    columns = {spec.name: arr[:, i] for i, spec in enumerate(features)}
    task: Task = "classification" if is_classifier(pipeline) else "regression"
    predictions = np.asarray(pipeline.predict(arr))
    classes = [_json_value(c) for c in pipeline.classes_] if task == "classification" else []
    feature_types = {spec.name: spec.type for spec in features}
    profile = baseline_profile(
        arr,
        feature_types,
        predictions,
        prediction_type="categorical" if task == "classification" else "numeric",
    )

    def instance(i: int) -> dict[str, Any]:
        return {
            spec.name: float(arr[i, j]) if spec.type == "numeric" else str(arr[i, j])
            for j, spec in enumerate(features)
        }

    n = min(example_rows, len(arr))
    examples = [{"instances": [instance(0)]}] if n else []
    if n > 1:
        examples.append({"instances": [instance(i) for i in range(n)]})

    manifest: dict[str, Any] = {
        "format": format,
        "name": name,
        "task": task,
        "feature_names": [spec.name for spec in features],
        "input_schema": input_schema(features, columns),
        "output_schema": _output_schema(task, classes),
        "baseline_profile": profile,
        "example_requests": examples,
    }
    if task == "classification":
        manifest["classes"] = classes
    if review_summary is not None:
        manifest["review_summary"] = list(review_summary)
    if review_explanation:
        manifest["review_explanation"] = "linear_contributions"
    _check_review_declaration(manifest)
    if review_explanation:
        if format != "sklearn-skops":
            raise PackageError(
                "unsupported_explanation", "review explanations need the sklearn-skops format"
            )
        _LinearExplainer(pipeline, manifest)

    if format == "sklearn-skops":
        import skops.io as sio

        model_bytes = sio.dumps(pipeline)
    else:
        model_bytes = _to_onnx(pipeline, features, task)
    out = Path(out_path)
    _write_zip(out, manifest, MODEL_MEMBERS[format], model_bytes)
    return PackageInfo(path=out, digest=file_digest(out), manifest=manifest)


# --------------------------------------------------------------------------- loading


_REQUIRED_MANIFEST_KEYS = ("format", "name", "task", "feature_names", "input_schema")


def _read_member(zf: zipfile.ZipFile, member: str) -> bytes:
    try:
        info = zf.getinfo(member)
    except KeyError:
        raise PackageError("missing_member", f"package has no {member}") from None
    if info.file_size > MAX_MEMBER_BYTES:
        raise PackageError("member_too_large", f"{member} inflates to {info.file_size} bytes")
    return zf.read(info)


def _check_manifest(manifest: Any) -> dict[str, Any]:
    if not isinstance(manifest, dict):
        raise PackageError("invalid_manifest", "manifest.json is not a JSON object")
    missing = [k for k in _REQUIRED_MANIFEST_KEYS if k not in manifest]
    if missing:
        raise PackageError("invalid_manifest", f"manifest.json lacks {', '.join(missing)}")
    if manifest["format"] not in MODEL_MEMBERS:
        raise PackageError("unknown_format", f"unknown package format {manifest['format']!r}")
    if manifest["task"] not in ("classification", "regression"):
        raise PackageError("invalid_manifest", f"unknown task {manifest['task']!r}")
    if manifest["task"] == "classification" and not manifest.get("classes"):
        raise PackageError("invalid_manifest", "a classifier's manifest must list its classes")
    _check_review_declaration(manifest)
    return manifest


def _check_review_declaration(manifest: Mapping[str, Any]) -> None:
    summary = manifest.get("review_summary")
    if summary is not None:
        names = manifest["feature_names"]
        if (
            not isinstance(summary, list)
            or len(summary) > REVIEW_SUMMARY_MAX_FIELDS
            or any(not isinstance(n, str) or n not in names or len(n) > 100 for n in summary)
            or len(set(summary)) != len(summary)
        ):
            raise PackageError(
                "invalid_manifest",
                f"review_summary must list at most {REVIEW_SUMMARY_MAX_FIELDS} distinct "
                "feature names of the package (of at most 100 characters)",
            )
    method = manifest.get("review_explanation")
    if method is not None:
        if method not in EXPLANATION_METHODS:
            raise PackageError(
                "invalid_manifest", f"review_explanation must be one of {EXPLANATION_METHODS}"
            )
        if not summary:
            raise PackageError(
                "invalid_manifest",
                "review_explanation needs a review_summary: it explains only the summary's "
                "features",
            )


class _Runner:
    def predict(self, columns: Mapping[str, Sequence[Any]]) -> Prediction:
        raise NotImplementedError

    def explain(self, prediction: Prediction, row: int) -> dict[str, Any] | None:
        return None


def _column_indices(columns: Any, names: Sequence[str]) -> np.ndarray:
    """A ColumnTransformer's column selection as indices into the package's features."""
    if isinstance(columns, str):
        columns = [columns]
    if isinstance(columns, list | tuple) and columns and all(isinstance(c, str) for c in columns):
        return np.asarray([list(names).index(c) for c in columns])
    if callable(columns):
        raise PackageError(
            "unsupported_explanation", "callable column selections cannot be explained"
        )
    return np.atleast_1d(np.arange(len(names))[columns])


def _column_owners(transformer: Any, names: Sequence[str]) -> np.ndarray:
    """For each output column of a fitted ColumnTransformer, the index of the package feature it
    comes from: one-to-one transformers, single-column transformers (a one-hot encoding of one
    feature) and one-hot encoders without dropped categories are understood."""
    slices = transformer.output_indices_
    owners = np.full(max((sl.stop for sl in slices.values()), default=0), -1)
    for name, fitted, columns in transformer.transformers_:
        sl = slices.get(name)
        if (isinstance(fitted, str) and fitted == "drop") or sl is None or sl.stop == sl.start:
            continue
        idx = _column_indices(columns, names)
        width = sl.stop - sl.start
        categories = getattr(fitted, "categories_", None)
        sizes = [len(c) for c in categories] if categories is not None else []
        if (
            categories is not None
            and len(sizes) == len(idx)
            and getattr(fitted, "drop_idx_", None) is None
            and sum(sizes) == width
        ):
            owners[sl] = np.repeat(idx, sizes)
        elif len(idx) == 1:
            owners[sl] = idx[0]
        elif width == len(idx) and categories is None:
            owners[sl] = idx
        else:
            raise PackageError(
                "unsupported_explanation",
                f"cannot tell which features the outputs of step {name!r} come from",
            )
    return owners


class _LinearExplainer:
    """Per-feature contributions of a linear final estimator (coef_ x model input, summed over
    the columns each feature became), restricted to the package's review summary.

    For a binary classifier the contributions are to the log-odds of the predicted class; for a
    multiclass one, to the predicted class's score; for a regressor, to the predicted value."""

    def __init__(self, pipeline: Any, manifest: Mapping[str, Any]) -> None:
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline

        if not isinstance(pipeline, Pipeline):
            raise PackageError(
                "unsupported_explanation", "linear contributions need a scikit-learn Pipeline"
            )
        final = pipeline.steps[-1][1]
        coef = getattr(final, "coef_", None)
        if coef is None:
            raise PackageError(
                "unsupported_explanation",
                "linear contributions need a final estimator with coef_ (a linear model)",
            )
        names = list(manifest["feature_names"])
        steps = [s for _, s in pipeline.steps[:-1] if s is not None and s != "passthrough"]
        if not steps:
            owners = np.arange(len(names))
        elif len(steps) == 1 and isinstance(steps[0], ColumnTransformer):
            owners = _column_owners(steps[0], names)
        else:
            raise PackageError(
                "unsupported_explanation",
                "linear contributions need no preprocessing or a single ColumnTransformer",
            )
        self._coef = np.atleast_2d(np.asarray(coef, dtype=float))
        if self._coef.shape[1] != len(owners):
            raise PackageError(
                "unsupported_explanation", "the model's coefficients do not match its inputs"
            )
        self._intercept = np.atleast_1d(np.asarray(getattr(final, "intercept_", 0.0), dtype=float))
        self._classifier = manifest["task"] == "classification"
        self._groups = [
            (name, np.flatnonzero(owners == names.index(name)))
            for name in manifest.get("review_summary") or ()
        ]
        self.prefix = pipeline[:-1] if steps else None
        self.final = final

    def transform(self, X: np.ndarray) -> Any:
        return X if self.prefix is None else self.prefix.transform(X)

    def explain(self, model_inputs: Any, row: int, class_index: int | None) -> dict[str, Any]:
        x = model_inputs[row]
        x = x.toarray() if hasattr(x, "toarray") else x
        x = np.asarray(x, dtype=float).ravel()
        if self._coef.shape[0] == 1:
            # Binary: coef_ points to classes_[1]; the predicted class 0 is its negation.
            sign = -1.0 if self._classifier and class_index == 0 else 1.0
            weights, intercept = self._coef[0] * sign, float(self._intercept[0]) * sign
        else:
            index = class_index or 0
            weights, intercept = self._coef[index], float(self._intercept[index])
        return {
            "method": "linear_contributions",
            "intercept": round(intercept, 6),
            "contributions": {
                name: round(float(weights[idx] @ x[idx]), 6) for name, idx in self._groups
            },
        }


class _SklearnRunner(_Runner):
    def __init__(self, pipeline: Any, manifest: dict[str, Any]) -> None:
        self._pipeline = pipeline
        self._names = list(manifest["feature_names"])
        self._classifier = manifest["task"] == "classification"
        if self._classifier:
            model_classes = [_json_value(c) for c in pipeline.classes_]
            if model_classes != list(manifest["classes"]):
                raise PackageError("invalid_manifest", "manifest classes differ from the model's")
            self._classes = np.asarray(pipeline.classes_)
        self._explainer: _LinearExplainer | None = None
        if manifest.get("review_explanation") == "linear_contributions":
            self._explainer = _LinearExplainer(pipeline, manifest)

    def predict(self, columns: Mapping[str, Sequence[Any]]) -> Prediction:
        import sklearn

        rows = len(columns[self._names[0]])
        X = np.empty((rows, len(self._names)), dtype=object)
        for j, name in enumerate(self._names):
            X[:, j] = columns[name]
        # Inputs were validated as finite already; skip sklearn's second scan.
        with sklearn.config_context(assume_finite=True):
            if self._explainer is not None:
                return self._predict_keeping_inputs(X, self._explainer)
            if self._classifier:
                proba = np.asarray(self._pipeline.predict_proba(X), dtype=float)
                labels = self._classes[np.argmax(proba, axis=1)].tolist()
                return Prediction(labels=labels, probabilities=proba)
            return Prediction(labels=np.asarray(self._pipeline.predict(X), dtype=float).tolist())

    def _predict_keeping_inputs(self, X: np.ndarray, explainer: _LinearExplainer) -> Prediction:
        # What Pipeline.predict(_proba) does, with the transformed batch kept for explanations.
        Xt = explainer.transform(X)
        if self._classifier:
            proba = np.asarray(explainer.final.predict_proba(Xt), dtype=float)
            labels = self._classes[np.argmax(proba, axis=1)].tolist()
            return Prediction(labels=labels, probabilities=proba, model_inputs=Xt)
        values = np.asarray(explainer.final.predict(Xt), dtype=float).tolist()
        return Prediction(labels=values, model_inputs=Xt)

    def explain(self, prediction: Prediction, row: int) -> dict[str, Any] | None:
        if self._explainer is None or prediction.model_inputs is None:
            return None
        class_index = None
        if prediction.probabilities is not None:
            class_index = int(np.argmax(prediction.probabilities[row]))
        return self._explainer.explain(prediction.model_inputs, row, class_index)


class _OnnxRunner(_Runner):
    def __init__(self, model_bytes: bytes, manifest: dict[str, Any]) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One thread per session: the service scales with worker processes, not intra-op threads.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            model_bytes, options, providers=["CPUExecutionProvider"]
        )
        self._classifier = manifest["task"] == "classification"
        self._classes = list(manifest.get("classes") or [])
        self._inputs: list[tuple[str, Any]] = []
        for inp in self._session.get_inputs():
            dtype: Any = str if inp.type == "tensor(string)" else np.float32
            self._inputs.append((inp.name, dtype))
        if sorted(n for n, _ in self._inputs) != sorted(manifest["feature_names"]):
            raise PackageError("invalid_manifest", "ONNX inputs differ from the feature names")
        self._outputs = [o.name for o in self._session.get_outputs()]

    def predict(self, columns: Mapping[str, Sequence[Any]]) -> Prediction:
        feed = {
            name: np.asarray(columns[name], dtype=dtype).reshape(-1, 1)
            for name, dtype in self._inputs
        }
        outputs = self._session.run(None, feed)
        if self._classifier:
            proba = np.asarray(outputs[self._outputs.index("probabilities")], dtype=float)
            labels = [self._classes[i] for i in np.argmax(proba, axis=1)]
            return Prediction(labels=labels, probabilities=proba)
        return Prediction(labels=np.asarray(outputs[0], dtype=float).reshape(-1).tolist())


def _load_skops(model_bytes: bytes, manifest: dict[str, Any]) -> _Runner:
    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=model_bytes)
    refused = [t for t in untrusted if t not in SKOPS_TRUSTED_TYPES]
    if refused:
        raise UntrustedModel(refused)
    pipeline = sio.loads(model_bytes, trusted=untrusted)
    return _SklearnRunner(pipeline, manifest)


def load_package(path: str | Path, expected_digest: str) -> LoadedModel:
    """Verify the file's sha256 against `expected_digest`, then load the manifest and model.

    Raises `DigestMismatch` (with both digests) before reading anything else from the file.
    """
    path = Path(path)
    expected = normalize_digest(expected_digest)
    try:
        actual = file_digest(path)
    except OSError as exc:
        raise PackageError("unreadable", f"cannot read artifact {path}: {exc.strerror}") from exc
    if actual != expected:
        raise DigestMismatch(expected=expected, actual=actual, path=str(path))
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = _check_manifest(json.loads(_read_member(zf, MANIFEST_NAME)))
            model_bytes = _read_member(zf, MODEL_MEMBERS[manifest["format"]])
    except zipfile.BadZipFile as exc:
        raise PackageError("not_a_package", f"artifact {path} is not a zip package") from exc
    except json.JSONDecodeError as exc:
        raise PackageError("invalid_manifest", "manifest.json is not valid JSON") from exc
    if manifest["format"] == "sklearn-skops":
        runner = _load_skops(model_bytes, manifest)
    else:
        runner = _OnnxRunner(model_bytes, manifest)
    return LoadedModel(manifest=manifest, digest=actual, path=path, _runner=runner)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read a package's manifest without loading the model (no digest check: metadata only)."""
    with zipfile.ZipFile(path) as zf:
        return _check_manifest(json.loads(_read_member(zf, MANIFEST_NAME)))


__all__ = [
    "EXPLANATION_METHODS",
    "PACKAGE_FORMATS",
    "REVIEW_SUMMARY_MAX_FIELDS",
    "SKOPS_TRUSTED_TYPES",
    "DigestMismatch",
    "FeatureSpec",
    "LoadedModel",
    "PackageError",
    "PackageInfo",
    "Prediction",
    "UntrustedModel",
    "baseline_profile",
    "bucket_counts",
    "file_digest",
    "load_package",
    "normalize_digest",
    "package_sklearn",
    "read_manifest",
]
