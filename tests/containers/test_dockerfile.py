"""The control plane's Dockerfile and .dockerignore, read without a Docker engine: a small parser
of Dockerfile instructions, then the properties the image must keep (stages, non-root user,
health check, port, entrypoint) and a build context that holds what the COPYs need and no
local state or secrets."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field

import pytest

from tests.containers.conftest import ROOT


@dataclass
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        value = json.loads(self.args)
        assert isinstance(value, list), f"{self.keyword} is not in exec form: {self.args}"
        return value


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base} has no {keyword}"
        return found[-1]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions grouped by stage: comments dropped, backslash continuations joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comments inside a continued instruction are ignored, as Docker does
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued instruction"

    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif keyword == "ARG" and not stages:
            continue
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append(Instruction(keyword, args))
    return stages


def copy_sources(stage: Stage) -> list[str]:
    """Sources of COPY instructions that read the build context (not --from another stage)."""
    sources: list[str] = []
    for copy in stage.all("COPY"):
        words = shlex.split(copy.args)
        if any(word.startswith("--from=") for word in words):
            continue
        words = [word for word in words if not word.startswith("--")]
        sources.extend(words[:-1])
    return sources


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule for the paths used here: the last matching pattern wins, `!` re-includes,
    and a pattern matching a folder excludes everything below it."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        if body.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, body[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatch(prefix, body) for prefix in prefixes)
        if hit:
            ignored = not negate
    return ignored


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


def test_it_builds_wheels_in_one_stage_and_runs_from_a_slim_second_one(stages):
    assert [(s.base, s.name) for s in stages] == [
        ("python:3.11-slim", "build"),
        ("python:3.11-slim", "runtime"),
    ]
    build, runtime = stages
    assert any(
        "pip wheel" in run.args and run.args.rstrip().endswith(" .") for run in build.all("RUN")
    )
    installs = [run.args for run in runtime.all("RUN") if "pip install" in run.args]
    assert len(installs) == 1
    assert "--no-index" in installs[0] and "from=build" in installs[0]
    assert " -e " not in installs[0] and "--editable" not in installs[0]
    # The runtime stage never sees the source tree: only the entrypoint scripts.
    assert all(src.startswith("docker/") for src in copy_sources(runtime))


def test_it_collects_static_files_at_build_time(stages):
    runtime = stages[-1]
    assert any("collectstatic --noinput" in run.args for run in runtime.all("RUN"))
    assert not any("SECRET_KEY" in env.args for env in runtime.all("ENV"))


def test_it_runs_as_a_non_root_user_from_the_user_instruction_on(stages):
    runtime = stages[-1]
    user = runtime.last("USER").args
    assert user.split(":")[0] not in {"0", "root"}
    keywords = [i.keyword for i in runtime.instructions]
    after_user = keywords[keywords.index("USER") :]
    assert "RUN" not in after_user and "ENTRYPOINT" in after_user


def test_its_healthcheck_asks_the_web_liveness_endpoint(stages):
    runtime = stages[-1]
    healthcheck = runtime.last("HEALTHCHECK").args
    options, _, command = healthcheck.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    assert json.loads(command) == ["python", "/app/docker/healthcheck.py", "web"]
    assert "docker/healthcheck.py" in copy_sources(runtime)
    script = (ROOT / "docker" / "healthcheck.py").read_text()
    assert "/healthz" in script


def test_it_exposes_the_web_port_and_starts_through_the_entrypoint_script(stages):
    runtime = stages[-1]
    assert runtime.last("EXPOSE").args == "8000"
    assert "PORT=8000" in " ".join(env.args for env in runtime.all("ENV"))
    assert runtime.last("ENTRYPOINT").exec_form() == ["/app/docker/entrypoint.sh"]
    assert runtime.last("CMD").exec_form() == ["web"]
    assert "docker/entrypoint.sh" in copy_sources(runtime)
    assert (ROOT / "docker" / "entrypoint.sh").stat().st_mode & 0o111


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.serving"])
def test_every_copy_source_exists_and_is_in_the_build_context(dockerfile):
    patterns = dockerignore_patterns()
    sources = [
        src
        for stage in parse_dockerfile((ROOT / dockerfile).read_text())
        for src in copy_sources(stage)
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"{dockerfile} copies {source}, which does not exist"
        assert not is_ignored(source, patterns), f".dockerignore drops {source} ({dockerfile})"


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        "var/modelplane.sqlite3",
        "node_modules/htmx.org/package.json",
        ".git/HEAD",
        ".env",
        "serving/__pycache__/app.cpython-311.pyc",
    ],
)
def test_the_build_context_leaves_out_local_state_and_secrets(path):
    assert is_ignored(path, dockerignore_patterns())


def test_the_parser_joins_continuations_and_names_stages():
    stages = parse_dockerfile(
        "# c\nARG X=1\nFROM a:1 AS one\nRUN echo \\\n  # inside\n  two\nFROM b\nUSER 1\n"
    )
    assert [(s.base, s.name) for s in stages] == [("a:1", "one"), ("b", None)]
    assert stages[0].last("RUN").args == "echo  two"


def test_the_web_server_is_a_declared_dependency_of_the_package():
    # The runtime stage installs the package's own dependencies and nothing else, so
    # `entrypoint.sh web` has gunicorn only if pyproject.toml declares it.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {
        re.split(r"[\[<>=!~; ]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]
    }
    assert "gunicorn" in names
