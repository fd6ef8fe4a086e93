"""'A person aborted this release' becomes a field of the release. Before, it was the text
status_reason == "aborting" on the release (set when an abort met a rollback under way) and
evidence["aborting"] on its rollback (set when an abort started one). A release caught rolling
back by this migration keeps its meaning: it ends aborted once its rollback is done.
A rollback's created_at is stamped on the engine's clock (its progress deadline counts from it);
the column is unchanged."""

from django.db import migrations, models
from django.db.models import Q

import core.clock


def aborting_from_text(apps, schema_editor):  # type: ignore[no-untyped-def]
    Release = apps.get_model("deployments", "Release")
    Release.objects.filter(state="rolling_back").filter(
        Q(status_reason="aborting") | Q(rollbacks__evidence__aborting=True)
    ).update(aborting=True)


def aborting_to_text(apps, schema_editor):  # type: ignore[no-untyped-def]
    Release = apps.get_model("deployments", "Release")
    Rollback = apps.get_model("deployments", "Rollback")
    aborting = Release.objects.filter(state="rolling_back", aborting=True)
    for rollback in Rollback.objects.filter(release__in=aborting, state="pending"):
        rollback.evidence = {**rollback.evidence, "aborting": True}
        rollback.save(update_fields=["evidence"])
    aborting.update(status_reason="aborting")


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0002_environment_scrape_interval"),
    ]

    operations = [
        migrations.AddField(
            model_name="release",
            name="aborting",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(aborting_from_text, aborting_to_text),
        migrations.AlterField(
            model_name="rollback",
            name="created_at",
            field=models.DateTimeField(default=core.clock.now, editable=False),
        ),
    ]
