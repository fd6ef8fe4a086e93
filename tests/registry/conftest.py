from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.test import override_settings

from tests.factories import INPUT_SCHEMA, ModelVersionFactory, RegisteredModelFactory


@pytest.fixture
def model(team):  # type: ignore[no-untyped-def]
    return RegisteredModelFactory(team=team, name="fraud-detector", risk_tier="high")


@pytest.fixture
def foreign_model(other_team):  # type: ignore[no-untyped-def]
    return RegisteredModelFactory(team=other_team, name="ranker")


@pytest.fixture
def version(model):  # type: ignore[no-untyped-def]
    return ModelVersionFactory(model=model, number=1)


@pytest.fixture
def artifact_root(tmp_path: Path):  # type: ignore[no-untyped-def]
    root = tmp_path / "artifacts"
    root.mkdir()
    with override_settings(ARTIFACT_FILE_ROOTS=[str(root)]):
        yield root


@pytest.fixture
def artifact(artifact_root: Path) -> tuple[str, str]:
    """A real artifact file under the allowed root: (file URI, its sha256 digest)."""
    path = artifact_root / "model.mpkg"
    path.write_bytes(b"model bytes " * 1000)
    return path.as_uri(), "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def version_body(artifact) -> dict:  # type: ignore[no-untyped-def]
    uri, digest = artifact
    return {
        "artifact_uri": uri,
        "artifact_digest": digest,
        "framework": "sklearn",
        "input_schema": INPUT_SCHEMA,
        "output_schema": {"type": "object", "properties": {"label": {"type": "integer"}}},
        "example_requests": [{"instances": [{"age": 41, "plan": "pro"}]}],
        "config": {"schema_version": 1, "preprocessing": "pipeline:v3"},
        "baseline_profile": {
            "features": {
                "age": {"type": "numeric", "bin_edges": [0, 30, 60, 90], "counts": [10, 20, 5]},
                "plan": {"type": "categorical", "frequencies": {"basic": 30, "pro": 5}},
            },
            "rows": 35,
        },
        "source_commit": "a1b2c3d",
        "ci_run_url": "https://ci.example.com/runs/42",
        "training_data_ref": "s3://data/fraud/2026-11",
        "tags": ["nightly"],
    }
