"""docker-compose.yml, read without a Docker engine (`docker compose config` is not available
here): the services of the stack, their health checks and start order, where their secrets come
from, and that the Prometheus configuration scrapes services that exist."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.containers.conftest import ROOT

LONG_RUNNING = {"postgres", "redis", "web", "worker", "beat", "demo-model", "prometheus"}
ONE_SHOT = {"migrate", "demo-model-package"}
CONTROL_PLANE = {"migrate", "web", "worker", "beat"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


def test_it_defines_the_whole_stack(services):
    assert set(services) == LONG_RUNNING | ONE_SHOT
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["demo-model"]["build"]["dockerfile"] == "Dockerfile.serving"
    for name in CONTROL_PLANE | {"demo-model-package"}:
        assert services[name]["build"]["dockerfile"] == "Dockerfile"


@pytest.mark.parametrize("name", sorted(LONG_RUNNING))
def test_every_long_running_service_has_a_healthcheck(services, name):
    healthcheck = services[name]["healthcheck"]
    assert not healthcheck.get("disable")
    assert healthcheck["test"][0] in {"CMD", "CMD-SHELL"}
    assert {"interval", "timeout", "retries"} <= set(healthcheck)


def test_control_plane_healthchecks_match_their_roles(services):
    for role in ("web", "worker", "beat"):
        assert services[role]["command"] == [role]
        assert services[role]["healthcheck"]["test"] == [
            "CMD",
            "python",
            "/app/docker/healthcheck.py",
            role,
        ]
    assert services["migrate"]["command"] == ["migrate"]


def test_services_wait_for_healthy_dependencies_and_finished_jobs(services):
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            expected = (
                "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            )
            assert rule == {"condition": expected}, f"{name} -> {dependency}"
    for name in ("web", "worker"):
        assert {"postgres", "redis", "migrate"} <= set(services[name]["depends_on"])
    assert "migrate" in services["beat"]["depends_on"]
    assert set(services["prometheus"]["depends_on"]) == {"web", "demo-model"}
    assert services["demo-model"]["depends_on"] == {
        "demo-model-package": {"condition": "service_completed_successfully"}
    }


def test_one_shot_jobs_are_not_restarted(services):
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no"
        assert services[name]["healthcheck"] == {"disable": True}


def test_migrations_run_as_the_owner_and_processes_as_the_application_role(services):
    migrate_url = services["migrate"]["environment"]["DATABASE_URL"]
    assert migrate_url.startswith("postgres://${POSTGRES_USER")
    for name in ("web", "worker", "beat"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://${APP_DB_USER")
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert services[name]["env_file"] == [{"path": ".env", "required": True}]


def test_it_holds_no_secret_values_of_its_own(services):
    text = (ROOT / "docker-compose.yml").read_text()
    assert "SECRET_KEY" not in text  # only ever from .env
    for match in re.finditer(r"\$\{(\w*PASSWORD\w*):-([^}]*)\}", text):
        assert match.group(2).startswith("local-only-"), match.group(0)
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search("PASSWORD|SECRET|TOKEN", key):
                assert str(value).startswith("${"), f"{name} sets {key} to a literal"


def test_only_the_portal_and_prometheus_are_published_and_only_on_loopback(services):
    published = {name: s["ports"] for name, s in services.items() if "ports" in s}
    assert published == {"web": ["127.0.0.1:8000:8000"], "prometheus": ["127.0.0.1:9090:9090"]}


def test_mounted_files_and_named_volumes_exist(compose, services):
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).is_file(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"
    init_script = ROOT / "docker" / "postgres" / "10-app-role.sh"
    assert init_script.stat().st_mode & 0o111  # the postgres image sources it otherwise
    assert "/etc/modelplane/app-role.sql" in init_script.read_text()


def test_every_interpolated_variable_is_documented_in_the_env_example():
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{(\w+)", text))
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^(\w+)=", example, flags=re.MULTILINE))
    assert used <= documented, used - documented
    assert "SECRET_KEY" in documented


def test_prometheus_scrapes_the_demo_model_and_the_control_plane(services):
    config = yaml.safe_load((ROOT / "docker" / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets["model-serving"] == ["demo-model:8080"]
    assert targets["controlplane"] == ["web:8000"]
    command = services["demo-model"]["command"]
    assert command[command.index("--port") + 1] == "8080"
    example = (ROOT / ".env.example").read_text()
    allowed = re.search(r"^ALLOWED_HOSTS=(.*)$", example, flags=re.MULTILINE)
    assert allowed and "web" in allowed.group(1).split(",")  # the scrape's Host header


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_prometheus_accepts_the_configuration():
    config = ROOT / "docker" / "prometheus" / "prometheus.yml"
    result = subprocess.run(
        ["promtool", "check", "config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
