"""The second half of the move to the identity app: the registry's own tables point at
identity's Team and ApiToken (the same tables, so nothing changes in the database), the moved
models leave the registry's state, and their content types are renamed so that admin history
and permissions follow them. Rows and the audit trigger are untouched."""

import django.db.models.deletion
from django.db import migrations, models

MOVED = ("team", "membership", "apitoken", "idempotencyrecord", "auditevent")


def rename_content_types(apps, schema_editor, source="registry", target="identity"):
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    for model in MOVED:
        # A target row can exist only if someone created it by hand; the source row carries the
        # history (permissions, admin log), so it wins.
        if ContentType.objects.using(db).filter(app_label=source, model=model).exists():
            ContentType.objects.using(db).filter(app_label=target, model=model).delete()
            ContentType.objects.using(db).filter(app_label=source, model=model).update(
                app_label=target
            )


def restore_content_types(apps, schema_editor):
    rename_content_types(apps, schema_editor, source="identity", target="registry")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("registry", "0002_audit_append_only"),
        ("identity", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="registeredmodel",
                    name="team",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="models",
                        to="identity.team",
                    ),
                ),
                migrations.AlterField(
                    model_name="modelversion",
                    name="created_by_token",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="identity.apitoken",
                    ),
                ),
                migrations.DeleteModel(name="AuditEvent"),
                migrations.DeleteModel(name="Membership"),
                migrations.DeleteModel(name="ApiToken"),
                migrations.DeleteModel(name="IdempotencyRecord"),
                migrations.DeleteModel(name="Team"),
            ],
            database_operations=[],
        ),
        migrations.RunPython(rename_content_types, restore_content_types),
    ]
