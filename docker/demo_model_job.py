"""One-shot job of the compose stack: trains and packages the demo model (v1 and v2) into the
artifact folder that the demo model service and the control plane share, and writes one env file
per version (`v1.env`: MODEL_ARTIFACT_URI, MODEL_ARTIFACT_DIGEST, MODEL_NAME, MODEL_VERSION) for
the serving container to source before it starts.

Idempotent: when `packages.json` lists packages whose digests still match, it does nothing, so
`docker compose up` does not retrain on every start. It only uses the data set bundled with
scikit-learn and must never download anything.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

MANIFEST = "packages.json"


def sha256_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def packages_up_to_date(out_dir: Path) -> bool:
    """True when the manifest exists and every package it lists is present with its digest."""
    try:
        entries = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(entries, list) or not entries:
        return False
    for entry in entries:
        path = Path(entry.get("path", ""))
        env_file = out_dir / f"{entry.get('version')}.env"
        if not path.is_file() or not env_file.is_file():
            return False
        if sha256_digest(path) != entry.get("digest"):
            return False
    return True


def build_packages(out_dir: Path) -> list[dict[str, Any]]:
    """Train, package and describe both versions; the manifest is written last, so a job killed
    half-way is rebuilt on the next run instead of being taken as done."""
    from serving.demo_model import MODEL_NAME, build_demo_versions

    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for number, info in enumerate(build_demo_versions(out_dir), start=1):
        path = Path(info.path).resolve()
        entry = {
            "model": MODEL_NAME,
            "version": f"v{number}",
            "path": str(path),
            "uri": path.as_uri(),
            "digest": info.digest,
        }
        env = {
            "MODEL_ARTIFACT_URI": entry["uri"],
            "MODEL_ARTIFACT_DIGEST": entry["digest"],
            "MODEL_NAME": MODEL_NAME,
            "MODEL_VERSION": entry["version"],
        }
        lines = "".join(f"{key}={shlex.quote(value)}\n" for key, value in env.items())
        _write_atomically(out_dir / f"{entry['version']}.env", lines)
        entries.append(entry)
    _write_atomically(out_dir / MANIFEST, json.dumps(entries, indent=2) + "\n")
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo_model_job.py", description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    out_dir: Path = args.out_dir
    if not args.force and packages_up_to_date(out_dir):
        print(f"demo model packages in {out_dir} are up to date", flush=True)
        return 0
    try:
        entries = build_packages(out_dir)
    except PermissionError as exc:
        print(f"cannot write the demo model packages: {exc}", file=sys.stderr)
        return 1
    for entry in entries:
        print(f"built {entry['model']} {entry['version']}: {entry['uri']} {entry['digest']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
