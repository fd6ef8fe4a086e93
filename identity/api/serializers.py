"""Translation between JSON and teams, members, tokens and audit events. Shapes and types only:
the services decide."""

from __future__ import annotations

from rest_framework import serializers

from core.api import StrictCharField, StrictSerializer, StrictSlugField
from identity.models import ApiToken, AuditEvent, Membership, Role, Team, TokenScope


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["slug", "name", "description", "created_at"]
        read_only_fields = ["created_at"]


class TeamCreateSerializer(StrictSerializer):
    slug = StrictSlugField(max_length=63)
    name = StrictCharField(max_length=200, required=False, allow_blank=True, default="")
    description = StrictCharField(required=False, allow_blank=True, default="")


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role", "is_approver", "is_on_call", "is_reviewer", "created_at"]


class MembershipWriteSerializer(StrictSerializer):
    username = StrictCharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)
    is_approver = serializers.BooleanField(required=False)
    is_on_call = serializers.BooleanField(required=False)
    is_reviewer = serializers.BooleanField(required=False)


class TokenSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "team",
            "name",
            "prefix",
            "scopes",
            "expires_at",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]


class TokenCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=TokenScope.choices), allow_empty=False
    )
    expires_at = serializers.DateTimeField()


class IssuedTokenSerializer(TokenSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="Shown once; store it in your CI secrets."
    )

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "secret"]


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "occurred_at",
            "actor_type",
            "actor_label",
            "action",
            "target_type",
            "target_id",
            "target_label",
            "before",
            "after",
            "reason",
            "request_id",
            "remote_addr",
        ]
