"""Page forms: they parse and shape what a person typed into the arguments a registry service
takes. They must never decide who may do what or which state change is allowed: the services
do, and a form that disagrees with them only hides choices, it never enforces."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from identity.models import Role, Team, TokenScope
from identity.services import MAX_TOKEN_LIFETIME
from registry.models import VERSION_STATUS_TRANSITIONS, ModelVersion, RiskTier, VersionStatus


def model_filter_form(form: forms.Form, teams: Iterable[Team]) -> forms.Form:
    """Show ModelFilterSet's free-text `team` filter as a choice of the teams one may see."""
    choices = [("", "Any team"), *((team.slug, team.name) for team in teams)]
    form.fields["q"].widget = forms.TextInput(
        attrs={"type": "search", "placeholder": "name or words"}
    )
    form.fields["team"].widget = forms.Select(choices=choices)
    # django-filter's ChoiceField adds its own empty choice; name it, then refresh the widget.
    form.fields["risk_tier"].empty_label = "Any risk tier"
    form.fields["risk_tier"].choices = RiskTier.choices
    return form


class TagsField(forms.CharField):
    """Comma-separated tags in, a list of tags out (the service checks each tag)."""

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value)
        return [tag.strip() for tag in text.split(",") if tag.strip()]

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, list | tuple):
            return ", ".join(value)
        return value or ""


class AliasForm(forms.Form):
    name = forms.SlugField(
        max_length=63, label="Alias", help_text="Letters, digits, - and _ (e.g. champion)."
    )
    version = forms.IntegerField(min_value=1, label="Version")

    def offer(self, versions: Iterable[ModelVersion]) -> None:
        """Show the versions on the page as a select; the service still checks the number."""
        self.fields["version"].widget = forms.Select(
            choices=[(v.number, f"v{v.number} ({v.get_status_display()})") for v in versions]
        )


class VersionUpdateForm(forms.Form):
    status = forms.ChoiceField(choices=VersionStatus.choices, label="Status")
    tags = TagsField(required=False, label="Tags", help_text="Comma-separated.")

    def __init__(self, *args: Any, version: ModelVersion, **kwargs: Any):
        kwargs.setdefault("initial", {"status": version.status, "tags": version.tags})
        super().__init__(*args, **kwargs)
        # Offer only the moves the transition table allows; any posted status still reaches
        # services.version_update, which is the one place that accepts or refuses it.
        allowed = {version.status, *VERSION_STATUS_TRANSITIONS[version.status]}
        self.fields["status"].widget.choices = [
            (value, label) for value, label in VersionStatus.choices if value in allowed
        ]


class MembershipForm(forms.Form):
    username = forms.CharField(max_length=150, label="Username")
    role = forms.ChoiceField(choices=Role.choices, label="Role", initial=Role.VIEWER)
    is_approver = forms.BooleanField(required=False, label="Approver")
    is_on_call = forms.BooleanField(required=False, label="On call")
    is_reviewer = forms.BooleanField(required=False, label="Reviewer")


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, label="Token name", help_text="e.g. github-actions")
    scopes = forms.MultipleChoiceField(
        choices=TokenScope.choices,
        widget=forms.CheckboxSelectMultiple,
        label="Scopes",
        initial=[TokenScope.READ],
    )
    expires_in_days = forms.IntegerField(
        min_value=1,
        max_value=MAX_TOKEN_LIFETIME.days,
        initial=90,
        label="Expires in (days)",
    )

    def expires_at(self) -> datetime:
        return timezone.now() + timedelta(days=self.cleaned_data["expires_in_days"])
