"""The track a release's new version is shown on is the track the engine puts it on: the one
written in the release's frozen plan (a rolling release's new version is stable, as is a first
release's, whatever the strategy)."""

from __future__ import annotations

import pytest

from deployments.models import ReleaseState, Strategy
from deployments.runtime.base import Track
from deployments.tracks import release_track
from monitoring.selectors import deployment_health
from tests.factories import (
    ModelVersionFactory,
    RegisteredModelFactory,
    deployment_of,
    put_in_state,
    release_of,
)
from tests.monitoring_pages.conftest import make_environment

pytestmark = pytest.mark.django_db


def _in_progress(team, owner, strategy: str, *, first: bool):
    """A deployment (no metrics source: nothing is asked over the network) with v2 being
    released by `strategy`, over a stable v1 unless `first`."""
    model = RegisteredModelFactory(name="fraud-scorer", team=team)
    v1, v2 = (ModelVersionFactory(model=model, number=n) for n in (1, 2))
    environment = make_environment("production", "none")
    deployment = deployment_of(model, environment, stable=None if first else v1, strategy=strategy)
    release = put_in_state(release_of(deployment, v2, owner), ReleaseState.PROGRESSING)
    deployment.refresh_from_db()
    return deployment, release


def _planned_track(release) -> str:
    """The track of the production deploy step in the release's stored plan."""
    (track,) = [
        step["track"]
        for step in release.plan
        if step["action"] == "deploy" and step["phase"] == "production"
    ]
    return track


def _shown(deployment) -> list[tuple[str, int]]:
    (health,) = deployment_health([deployment], 900, 30, end=1_700_000_000)
    return [(str(track.track), track.version_number) for track in health.tracks]


def test_a_rolling_release_shows_its_new_version_on_the_stable_track(team, people):
    deployment, release = _in_progress(team, people["owner"], Strategy.ROLLING, first=False)
    assert _planned_track(release) == "stable"
    assert _shown(deployment) == [("stable", 1), ("stable", 2)]


def test_a_first_release_is_stable_whatever_the_strategy(team, people):
    deployment, release = _in_progress(team, people["owner"], Strategy.CANARY, first=True)
    assert _planned_track(release) == "stable"
    assert _shown(deployment) == [("stable", 2)]


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("first", [False, True])
def test_the_track_shown_is_the_track_in_the_release_plan(team, people, strategy, first):
    deployment, release = _in_progress(team, people["owner"], strategy, first=first)
    shown = dict((number, track) for track, number in _shown(deployment))
    assert shown[2] == _planned_track(release)
    assert release_track(strategy, replaces_a_version=not first) == _planned_track(release)


def test_every_strategy_has_a_track():
    assert {release_track(s, replaces_a_version=True) for s in Strategy} <= set(Track)
    with pytest.raises(ValueError):
        release_track("big_bang", replaces_a_version=True)
