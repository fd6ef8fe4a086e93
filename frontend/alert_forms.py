"""Forms of the alert, on-call and incident pages: they shape what a person typed into the
arguments of alerts.lifecycle and alerts.incidents. They never decide who may act nor which
input the domain accepts (a silence's length, a reassignment's reason, a closing summary): the
domain refuses, names the field, and the page shows the refusal on that field."""

from __future__ import annotations

from collections.abc import Iterable

from django import forms

from alerts.models import IncidentStatus
from alerts.selectors import AlertView
from identity.models import Membership

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


def _member_choices(members: Iterable[Membership]) -> list[tuple[str, str]]:
    return [("", "Choose a member"), *((m.user.username, m.user.username) for m in members)]


class AlertViewForm(forms.Form):
    view = forms.ChoiceField(choices=AlertView.choices, required=False, label="Show")

    def chosen(self) -> AlertView:
        """The valid tab, or "my alerts" (the page then says why with a 400)."""
        if self.is_bound and self.is_valid() and self.cleaned_data["view"]:
            return AlertView(self.cleaned_data["view"])
        return AlertView.MINE


class AcknowledgeForm(forms.Form):
    note = forms.CharField(max_length=4000, required=False, label="Note (optional)")


class ResolveForm(forms.Form):
    reason = forms.CharField(max_length=4000, required=False, label="Why is it resolved?")


class SilenceForm(forms.Form):
    until = forms.DateTimeField(
        label="Silence until (UTC)",
        input_formats=[DATETIME_LOCAL, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL),
        help_text="No escalation and no notification until then (at most 7 days).",
    )
    reason = forms.CharField(max_length=4000, required=False, label="Reason")


class ReassignForm(forms.Form):
    assignee = forms.CharField(max_length=150, label="Hand over to")
    # Not required here: the domain says a reassignment needs a reason, and names the field.
    reason = forms.CharField(max_length=4000, required=False, label="Reason")

    def offer(self, members: Iterable[Membership]) -> None:
        """The team's members as a select; the domain still checks the name posted."""
        self.fields["assignee"].widget = forms.Select(choices=_member_choices(members))


class NoteForm(forms.Form):
    text = forms.CharField(
        max_length=4000, required=False, label="Note", widget=forms.Textarea(attrs={"rows": 3})
    )


class IncidentStatusForm(forms.Form):
    status = forms.ChoiceField(choices=IncidentStatus.choices, label="Status")
    summary = forms.CharField(
        required=False,
        label="Closing summary",
        help_text="Needed to close: what happened, and the notes for next time.",
        widget=forms.Textarea(attrs={"rows": 4}),
    )


class IncidentOwnerForm(forms.Form):
    owner = forms.CharField(max_length=150, label="New owner")
    # Not required here: the domain says a hand-over needs a reason, and names the field.
    reason = forms.CharField(max_length=4000, required=False, label="Reason")

    def offer(self, members: Iterable[Membership]) -> None:
        self.fields["owner"].widget = forms.Select(choices=_member_choices(members))
