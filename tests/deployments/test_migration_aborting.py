"""Releases caught rolling back by the migration that made 'aborting' a field keep their meaning:
the ones a person aborted (said by the old text status or by their rollback's evidence) still
end aborted; the others still end rolled back."""

from __future__ import annotations

import pytest

from deployments.models import Release
from tests.support.migrations import migrate_to, migrate_to_latest

BEFORE = [("deployments", "0002_environment_scrape_interval")]
DIGEST = "sha256:" + "ab" * 32


def _release(apps, deployment, version, config, **fields):  # type: ignore[no-untyped-def]
    release = apps.get_model("deployments", "Release").objects.create(
        deployment=deployment,
        version=version,
        from_version=version,
        config=config,
        strategy="canary",
        author_label="ada",
        **fields,
    )
    apps.get_model("deployments", "Rollback").objects.create(
        deployment=deployment,
        release=release,
        to_version=version,
        actor_label="ada",
        evidence={"trigger": {}, "aborting": False},
    )
    return release


@pytest.mark.django_db(transaction=True)
def test_old_rows_that_were_aborting_still_are():
    apps = migrate_to(BEFORE)
    team = apps.get_model("identity", "Team").objects.create(slug="fraud", name="Fraud")
    model = apps.get_model("registry", "RegisteredModel").objects.create(
        name="fraud-detector", team=team
    )
    version = apps.get_model("registry", "ModelVersion").objects.create(
        model=model, number=1, artifact_uri="file:///m.skops", artifact_digest=DIGEST
    )
    deployments = [
        apps.get_model("deployments", "Deployment").objects.create(
            model=model,
            environment=apps.get_model("deployments", "Environment").objects.create(name=name),
            name="fraud",
            stable_version=version,
        )
        for name in ("production", "europe", "asia")
    ]
    configs = [
        apps.get_model("deployments", "DeploymentConfig").objects.create(deployment=d, revision=1)
        for d in deployments
    ]
    by_text = _release(
        apps, deployments[0], version, configs[0], state="rolling_back", status_reason="aborting"
    )
    by_evidence = _release(
        apps, deployments[1], version, configs[1], state="rolling_back", status_reason="abort"
    )
    rollback = by_evidence.rollbacks.get()
    rollback.evidence = {"trigger": {}, "aborting": True}
    rollback.save()
    plain = _release(
        apps, deployments[2], version, configs[2], state="rolling_back", status_reason="failed"
    )

    migrate_to_latest()

    assert Release.objects.get(pk=by_text.pk).aborting
    assert Release.objects.get(pk=by_evidence.pk).aborting
    assert not Release.objects.get(pk=plain.pk).aborting
