"""Aborting is a fact about the release (Release.aborting), not a text in its status: it holds
while the release goes back, through every transition on the way, and decides how it ends."""

from __future__ import annotations

from core import clock
from deployments import engine, policy, services
from deployments.models import Release
from tests.deployments.conftest import drive


def canary_at_five_percent(world):  # type: ignore[no-untyped-def]
    release = drive(world.release(2), until={"progressing"})
    for _ in range(12):
        engine.reconcile(release.pk, force=True)
        clock.advance(5)
    assert world.weights() == {1: 95, 2: 5}
    release.refresh_from_db()
    return release


def test_an_abort_in_production_is_remembered_while_the_release_goes_back(promoted_v1):
    world = promoted_v1
    release = canary_at_five_percent(world)
    services.release_abort(actor=world.maintainer, release=release, reason="wrong model")
    release = Release.objects.get(pk=release.pk)
    assert release.state == "rolling_back"
    assert release.status_reason == "wrong model", "the reason a person gave stays readable"
    assert policy.is_aborting(release)
    assert "abort" not in policy.allowed_actions(release)
    services.release_abort(actor=world.maintainer, release=release, reason="again")
    assert release.steps.filter(kind="abort").count() == 1, "a second abort changes nothing"
    assert drive(release).state == "aborted"
    assert world.weights() == {1: 100}


def test_an_abort_during_an_automatic_rollback_ends_the_release_aborted(promoted_v1):
    world = promoted_v1
    world.verdict("fail")
    release = drive(world.release(2), until={"rolling_back"})
    assert not policy.is_aborting(release)
    assert "abort" in policy.allowed_actions(release)
    services.release_abort(actor=world.maintainer, release=release, reason="stop it for good")
    release.refresh_from_db()
    assert release.aborting and policy.is_aborting(release)
    release = drive(release)
    assert release.state == "aborted"
    assert release.steps.get(kind="aborted").evidence["aborting"] is True


def test_a_rollback_that_was_not_an_abort_ends_rolled_back(promoted_v1):
    world = promoted_v1
    world.verdict("fail")
    release = drive(world.release(2))
    assert release.state == "rolled_back"
    assert not release.aborting


def test_an_abort_in_staging_puts_staging_back(promoted_v1):
    world = promoted_v1
    release = world.release(2)
    for _ in range(30):
        release.refresh_from_db()
        if world.weights("ml-staging") == {2: 100}:
            break
        engine.reconcile(release.pk, force=True)
    assert release.state == "staging"
    services.release_abort(actor=world.maintainer, release=release, reason="not this one")
    release.refresh_from_db()
    assert release.state == "aborted"
    assert world.weights("ml-staging") == {1: 100}
    assert world.weights() == {1: 100}
