"""Forms of the deployment and release pages: they shape what a person typed into the arguments
the deployments services take. They never decide who may act or which state allows what; a
choice a form hides is still checked by the service when it is posted."""

from __future__ import annotations

from collections.abc import Iterable

from django import forms

from registry.models import ModelVersion


class StartReleaseForm(forms.Form):
    version = forms.IntegerField(min_value=1, label="Version")

    def offer(self, versions: Iterable[ModelVersion], serving: int | None) -> None:
        """Show the model's versions as a select (the one serving now is not offered)."""
        self.fields["version"].widget = forms.Select(
            choices=[
                (v.number, f"v{v.number} ({v.get_status_display()})")
                for v in versions
                if v.number != serving
            ]
        )


class RollbackForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        required=False,
        label="Reason",
        help_text="Recorded in the audit log, e.g. the alert that fired.",
    )


class ReleaseActionForm(forms.Form):
    """The optional note of an approval, rejection or operation."""

    note = forms.CharField(max_length=2000, required=False, label="Comment or reason")
