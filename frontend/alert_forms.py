"""Forms of the alert, on-call and incident pages: they shape what a person typed into the
arguments of alerts.lifecycle and alerts.incidents. They never decide who may act nor which
input the domain accepts (a silence's length, a reassignment's reason, a closing summary): the
domain refuses, names the field, and the page shows the refusal on that field."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms

from alerts.filtersets import ME
from alerts.models import AlertStatus, IncidentStatus, Severity
from alerts.selectors import ALERT_SORTS, INCIDENT_SORTS, AlertView
from identity.models import Membership

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


def _member_choices(members: Iterable[Membership]) -> list[tuple[str, str]]:
    return [("", "Choose a member"), *((m.user.username, m.user.username) for m in members)]


def _sort_choices(columns: Iterable[str]) -> list[tuple[str, str]]:
    return [choice for key in columns for choice in ((key, key), (f"-{key}", f"-{key}"))]


class ListForm(forms.Form):
    """The filters and the sort of a list page, all optional. A bad value is refused (the page
    answers 400 naming the field) and the page shows the list as if it were absent. `filters()`
    says it in the words of the domain's FilterSet: `choices` as one-value lists, the "mine"
    box as `me` on the `mine_filter` field."""

    severity = forms.ChoiceField(
        choices=[("", "Any severity"), *Severity.choices], required=False, label="Severity"
    )

    default_sort = ""
    choices: tuple[str, ...] = ("status", "severity")
    mine_filter = ""

    def value(self, name: str, default: Any = None) -> Any:
        if not self.is_bound:
            return default
        self.is_valid()
        value = self.cleaned_data.get(name)
        return default if value in (None, "", False) else value

    def ordering(self) -> str:
        return str(self.value("sort", self.default_sort))

    def filters(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            name: [self.value(name)] for name in self.choices if self.value(name)
        }
        if self.value("mine"):
            data[self.mine_filter] = ME
        return data


class AlertViewForm(ListForm):
    view = forms.ChoiceField(choices=AlertView.choices, required=False, label="Show")
    status = forms.ChoiceField(
        choices=[("", "Any state"), *AlertStatus.choices], required=False, label="State"
    )
    mine = forms.BooleanField(required=False, label="Assigned to me")
    deployment = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    sort = forms.ChoiceField(choices=_sort_choices(ALERT_SORTS), required=False, label="Sort")
    mine_filter = "assignee"

    def chosen(self) -> AlertView:
        """The valid tab, or "my alerts" (the page then says why with a 400)."""
        return AlertView(self.value("view", AlertView.MINE))

    def ordering(self) -> str:
        default = "-resolved" if self.chosen() == AlertView.RESOLVED else "-severity"
        return str(self.value("sort", default))

    def filters(self) -> dict[str, Any]:
        """What to narrow the tab to, as alerts.filtersets.AlertFilterSet reads it."""
        data = super().filters()
        if self.value("deployment"):
            data["deployment"] = self.value("deployment")
        return data


class IncidentListForm(ListForm):
    status = forms.ChoiceField(
        choices=[("", "Any status"), *IncidentStatus.choices], required=False, label="Status"
    )
    mine = forms.BooleanField(required=False, label="Owned by me")
    sort = forms.ChoiceField(choices=_sort_choices(INCIDENT_SORTS), required=False, label="Sort")
    default_sort = "status"
    mine_filter = "owner"


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
