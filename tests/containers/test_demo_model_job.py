"""docker/demo_model_job.py: the compose stack's one-shot job that packages the demo model and
writes the env files the demo model service sources."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path

from tests.containers.conftest import ROOT

JOB = ROOT / "docker" / "demo_model_job.py"


def run_job(out_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(JOB), str(out_dir), *extra],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line)
    return {key: shlex.split(value)[0] for key, value in pairs}


def test_it_packages_both_versions_with_env_files_that_match_their_digests(tmp_path):
    out = tmp_path / "demo"
    result = run_job(out)
    assert result.returncode == 0, result.stderr
    entries = json.loads((out / "packages.json").read_text())
    assert [entry["version"] for entry in entries] == ["v1", "v2"]
    for entry in entries:
        env = read_env_file(out / f"{entry['version']}.env")
        package = Path(env["MODEL_ARTIFACT_URI"].removeprefix("file://"))
        assert package.parent == out.resolve()
        assert env["MODEL_ARTIFACT_DIGEST"] == (
            f"sha256:{hashlib.sha256(package.read_bytes()).hexdigest()}"
        )
        assert (env["MODEL_NAME"], env["MODEL_VERSION"]) == ("breast-cancer", entry["version"])


def test_it_does_nothing_when_the_packages_are_up_to_date_and_rebuilds_a_damaged_one(tmp_path):
    out = tmp_path / "demo"
    assert run_job(out).returncode == 0
    v1 = out / "breast-cancer-v1-skops.zip"
    first_mtime = v1.stat().st_mtime_ns

    again = run_job(out)
    assert again.returncode == 0
    assert "up to date" in again.stdout
    assert v1.stat().st_mtime_ns == first_mtime

    v1.write_bytes(b"truncated")
    rebuilt = run_job(out)
    assert rebuilt.returncode == 0
    assert "built breast-cancer v1" in rebuilt.stdout
    digest = read_env_file(out / "v1.env")["MODEL_ARTIFACT_DIGEST"]
    assert digest == f"sha256:{hashlib.sha256(v1.read_bytes()).hexdigest()}"
