"""`make test`: lint, Django's checks, then the whole pytest suite in parallel.

With CI=true a missing PostgreSQL, Redis, Prometheus or Chromium is a failure (tests/settings.py
and the fixtures enforce it), never a silent skip."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*cmd: str, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(cmd), flush=True)
    result = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        sys.exit(result.returncode)


def main() -> None:
    py = sys.executable
    env = os.environ.copy()
    env.setdefault("MODELPLANE_TESTING", "1")
    run(py, "-m", "ruff", "check", ".")
    run(py, "-m", "ruff", "format", "--check", ".")
    # The layers and the no-circles rule (pyproject.toml [tool.importlinter]).
    run(os.path.join(os.path.dirname(py), "lint-imports"), "--no-cache")
    check_env = env | {"DJANGO_SETTINGS_MODULE": "tests.settings"}
    run(py, "manage.py", "check", env=check_env)
    run(py, "manage.py", "makemigrations", "--check", "--dry-run", env=check_env)
    workers = os.environ.get("PYTEST_WORKERS", "2")
    run(
        py,
        "-m",
        "pytest",
        "-n",
        workers,
        "--dist",
        "loadfile",
        "-p",
        "no:cacheprovider",
        *sys.argv[1:],
        env=env,
    )


if __name__ == "__main__":
    main()
