"""Teams, memberships, CI tokens, idempotency records and the audit log move here from the
registry app. Their tables stay where they are (same names, same rows, same audit trigger): this
migration only tells Django's state that the identity app owns them."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("registry", "0002_audit_append_only"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
            migrations.CreateModel(
                name='Team',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('slug', models.SlugField(max_length=63, unique=True)),
                    ('name', models.CharField(max_length=200)),
                    ('description', models.TextField(blank=True)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                ],
                options={
                    'db_table': 'registry_team',
                    'ordering': ['slug'],
                },
            ),
            migrations.CreateModel(
                name='ApiToken',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('name', models.CharField(max_length=100)),
                    ('prefix', models.CharField(max_length=16, unique=True)),
                    ('secret_hash', models.CharField(max_length=64, unique=True)),
                    ('scopes', models.JSONField(default=list)),
                    ('expires_at', models.DateTimeField()),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('last_used_at', models.DateTimeField(blank=True, null=True)),
                    ('revoked_at', models.DateTimeField(blank=True, null=True)),
                    ('created_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='tokens', to='identity.team')),
                ],
                options={
                    'db_table': 'registry_apitoken',
                    'ordering': ['team__slug', 'name'],
                    'constraints': [models.UniqueConstraint(fields=('team', 'name'), name='uniq_token_name_per_team')],
                },
            ),
            migrations.CreateModel(
                name='IdempotencyRecord',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('principal', models.CharField(max_length=100)),
                    ('key', models.CharField(max_length=200)),
                    ('method', models.CharField(max_length=10)),
                    ('path', models.CharField(max_length=500)),
                    ('body_sha256', models.CharField(max_length=64)),
                    ('status_code', models.PositiveSmallIntegerField()),
                    ('response_body', models.JSONField()),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                ],
                options={
                    'db_table': 'registry_idempotencyrecord',
                    'constraints': [models.UniqueConstraint(fields=('principal', 'key'), name='uniq_idempotency_key')],
                },
            ),
            migrations.CreateModel(
                name='Membership',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('role', models.CharField(choices=[('owner', 'Owner'), ('maintainer', 'Maintainer'), ('viewer', 'Viewer')], default='viewer', max_length=20)),
                    ('is_approver', models.BooleanField(default=False)),
                    ('is_on_call', models.BooleanField(default=False)),
                    ('is_reviewer', models.BooleanField(default=False)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to=settings.AUTH_USER_MODEL)),
                    ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to='identity.team')),
                ],
                options={
                    'db_table': 'registry_membership',
                    'ordering': ['team__slug', 'user__username'],
                    'constraints': [models.UniqueConstraint(fields=('team', 'user'), name='uniq_membership_team_user')],
                },
            ),
            migrations.CreateModel(
                name='AuditEvent',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('occurred_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                    ('actor_type', models.CharField(choices=[('user', 'User'), ('token', 'API token'), ('system', 'System')], max_length=10)),
                    ('actor_id', models.CharField(blank=True, max_length=64)),
                    ('actor_label', models.CharField(max_length=200)),
                    ('action', models.CharField(db_index=True, max_length=100)),
                    ('target_type', models.CharField(max_length=100)),
                    ('target_id', models.CharField(max_length=64)),
                    ('target_label', models.CharField(max_length=300)),
                    ('before', models.JSONField(blank=True, null=True)),
                    ('after', models.JSONField(blank=True, null=True)),
                    ('reason', models.TextField(blank=True)),
                    ('request_id', models.CharField(blank=True, max_length=64)),
                    ('remote_addr', models.CharField(blank=True, max_length=64)),
                    ('team', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='identity.team')),
                ],
                options={
                    'db_table': 'registry_auditevent',
                    'ordering': ['-occurred_at', '-id'],
                    'indexes': [models.Index(fields=['target_type', 'target_id'], name='registry_au_target__e499dd_idx')],
                },
            ),
            ],
            database_operations=[],
        ),
    ]
