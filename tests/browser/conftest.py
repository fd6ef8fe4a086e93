"""Fixtures of the browser journeys: Debian's headless Chromium driven by Playwright against
pytest-django's live server (its own port and its own test database under pytest-xdist), a
page per viewport, and the release engine's world for the journeys that need a real Celery
worker (the fake Kubernetes API, a stub model server, and the scripted analyzer: a release
advances in seconds, its traffic moving at the Kubernetes boundary only).

Playwright's sync API runs an event loop in this thread, so Django's guard against ORM calls
from async code is lifted for the length of a module (never beyond it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from core import clock
from deployments import services
from deployments.models import Environment
from identity.models import Membership, forget_roles
from tests.browser.browsing import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    SCREENSHOTS,
    log_in,
    require_chromium,
)
from tests.deployments.conftest import (  # noqa: F401 (fixtures: the release engine's world)
    World,
    fake_k8s,
    promoted_v1,
    world,
)
from tests.factories import MembershipFactory, UserFactory
from tests.support.analyzers import VERDICT_FILE_ENV
from tests.support.celery import celery_worker


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    # A slower machine (CI, with the rest of the suite beside it) gets the same 10 s as actions.
    expect.set_options(timeout=10_000)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                yield chromium
            finally:
                chromium.close()


@pytest.fixture
def new_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """new_page(viewport=DESKTOP) -> a page in a fresh browser context (its own cookies). A
    failing test leaves a screenshot of each of its pages in var/screenshots/failed/."""
    contexts: list[Any] = []

    def make(viewport: dict[str, int] = DESKTOP) -> Any:
        context = browser.new_context(viewport=viewport, locale="en-GB", timezone_id="UTC")
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        failed = SCREENSHOTS / "failed"
        failed.mkdir(parents=True, exist_ok=True)
        for i, context in enumerate(contexts):
            for j, page in enumerate(context.pages):
                page.screenshot(path=str(failed / f"{request.node.name}-{i}-{j}.png"))
    for context in contexts:
        context.close()


@pytest.fixture
def signed_in(new_page: Callable[..., Any], live_server: Any) -> Callable[..., Any]:
    """signed_in("ada", viewport=DESKTOP) -> a page of ada, logged in at /login/, on home."""

    def make(username: str, viewport: dict[str, int] = DESKTOP) -> Any:
        page = new_page(viewport)
        log_in(page, live_server.url, username)
        return page

    return make


def member(team: Any, username: str, role: str = "viewer", **duties: bool) -> Any:
    """A person of `team` with `role` and duties (is_approver, is_on_call, is_reviewer)."""
    user = UserFactory(username=username)
    MembershipFactory(team=team, user=user, role=role)
    Membership.objects.filter(team=team, user=user).update(**duties)
    forget_roles(user)
    return user


# The release engine on a real worker ------------------------------------------------------------

# Fast canary steps: 25 % of the traffic held for one analysis window, then everything. The
# window is long enough for the release page's 3 s poll to show the canary more than once.
CANARY = {
    "steps": [25, 100],
    "analysis_interval_seconds": 8,
    "min_requests": 1,
    "progress_deadline_seconds": 60,
}


@pytest.fixture(scope="module")
def verdict_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("verdict") / "verdict"
    path.write_text("pass")
    return path


@pytest.fixture(scope="module")
def engine_worker(
    django_db_setup: None,
    django_db_blocker: Any,
    verdict_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """A real Celery worker on Redis and the test database, judging canaries with the scripted
    analyzer (its verdict in `verdict_file`)."""
    if not settings.REDIS_AVAILABLE:
        pytest.skip("no Redis here (CI fails instead)")
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with (
        django_db_blocker.unblock(),
        celery_worker(
            log,
            concurrency=2,
            extra_env={
                "MODELPLANE_ANALYZER": "tests.support.analyzers.ScriptedAnalyzer",
                VERDICT_FILE_ENV: str(verdict_file),
            },
        ),
    ):
        yield


@pytest.fixture
def live_engine(
    transactional_db: None,
    engine_worker: None,
    promoted_v1: World,  # noqa: F811
    verdict_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    """`fraud-detector` of team "fraud" deployed in production with v1 promoted, a
    medium-risk model (one approval), its releases run by the worker from now on."""
    monkeypatch.setenv(VERDICT_FILE_ENV, str(verdict_file))
    verdict_file.write_text("pass")
    promoted_v1.verdict_file = verdict_file
    clock.reset()  # the worker reads the wall clock; so do the live server and the test
    # The scripted analyzer decides; with no metrics source, short analysis windows are allowed.
    Environment.objects.filter(pk=promoted_v1.production.pk).update(metrics_kind="none")
    model = promoted_v1.deployment.model
    model.risk_tier = "medium"
    model.save(update_fields=["risk_tier"])
    promoted_v1.deployment.refresh_from_db()
    services.deployment_configure(
        actor=promoted_v1.maintainer,
        deployment=promoted_v1.deployment,
        strategy_params=CANARY,
    )
    promoted_v1.deployment.refresh_from_db()
    return promoted_v1
