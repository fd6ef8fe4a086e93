"""An analysis window too short for the environment's scrape interval is refused up front:
it could never reach a verdict, and every canary step would pause as inconclusive."""

from __future__ import annotations

import pytest

from core.errors import ValidationFailed
from deployments import services
from identity.audit import Actor
from tests.factories import RegisteredModelFactory


@pytest.fixture
def env(db):  # type: ignore[no-untyped-def]
    return services.environment_create(
        actor=Actor.system("tests"),
        name="prod",
        runtime_kind="kubernetes",
        runtime_config={"api_url": "http://127.0.0.1:9"},
        metrics_kind="prometheus",
        metrics_url="http://prometheus:9090",
        metrics_scrape_interval_seconds=15,
    )


def create(env, **params):  # type: ignore[no-untyped-def]
    return services.deployment_create(
        actor=Actor.system("tests"),
        model=RegisteredModelFactory(),
        environment=env,
        strategy="canary",
        strategy_params=params,
    )


def test_it_refuses_a_window_shorter_than_its_samples_of_three_scrapes(env):
    # 25 samples of 3 scrapes of 15 s: 1125 s. Each sample's rate spans 4 scrapes (60 s).
    with pytest.raises(ValidationFailed) as error:
        create(env, analysis_interval_seconds=1124)
    assert error.value.field == "strategy_params.analysis_interval_seconds"
    assert "at least 1125 s" in error.value.reason
    assert create(env, analysis_interval_seconds=1125)


def test_the_default_window_fits_a_fifteen_second_scrape(env):
    assert create(env).effective_strategy_params["analysis_interval_seconds"] == 1200


def test_it_checks_a_reconfiguration_too(env):
    deployment = create(env)
    with pytest.raises(ValidationFailed):
        services.deployment_configure(
            actor=Actor.system("tests"),
            deployment=deployment,
            strategy_params={"analysis_interval_seconds": 60},
        )


def test_without_a_metrics_source_any_window_goes(db):
    env = services.environment_create(actor=Actor.system("tests"), name="dev", runtime_kind="local")
    assert create(env, analysis_interval_seconds=5)


def test_the_scrape_interval_is_bounded(db):
    with pytest.raises(ValidationFailed) as error:
        services.environment_create(
            actor=Actor.system("tests"),
            name="x",
            runtime_kind="local",
            metrics_scrape_interval_seconds=0,
        )
    assert error.value.field == "metrics_scrape_interval_seconds"
