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


class ReleaseDecisionForm(forms.Form):
    """An approver's approve or reject. The comment is optional to approve and required to reject:
    services.release_decide says so, and its error lands on this field (named as the service's
    keyword)."""

    comment = forms.CharField(
        max_length=2000,
        required=False,
        label="Comment (required to reject)",
        help_text="Recorded in the timeline and the audit log; the author reads why you rejected.",
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
    )


class ReleaseOperationForm(forms.Form):
    """The optional reason of a promote, pause, resume or abort."""

    reason = forms.CharField(
        max_length=2000,
        required=False,
        label="Reason",
        help_text="Recorded in the timeline and the audit log.",
    )
