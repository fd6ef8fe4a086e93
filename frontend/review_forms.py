"""Forms of the review pages: they shape what a reviewer chose into the arguments of
reviews.claims and reviews.decisions. They never decide who may take or decide an item, nor
which decision the domain accepts (a reason, a corrected output that differs from the
prediction): the domain refuses, names the field, and the page shows it on that field."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.db.models import TextChoices

from reviews.models import Decision, ReviewReason

# The key a classifier's prediction carries its class under (the submission contract's shape:
# {"label": "declined", "probabilities": {"approved": 0.41, "declined": 0.59}}).
LABEL_KEY = "label"
PROBABILITIES_KEY = "probabilities"


class ReviewTab(TextChoices):
    QUEUE = "queue", "Queue"
    MINE = "mine", "Claimed by me"
    APPEALS = "appeals", "Appeals"
    DECIDED = "decided", "Recently decided"


class QueueViewForm(forms.Form):
    view = forms.ChoiceField(choices=ReviewTab.choices, required=False, label="Show")
    deployment = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    reason = forms.ChoiceField(
        choices=[("", "Any reason"), *ReviewReason.choices],
        required=False,
        label="Why it is reviewed",
    )

    def reason_chosen(self) -> str:
        """The valid reason to narrow the list to, or "" (every reason)."""
        if self.is_bound and self.is_valid():
            return str(self.cleaned_data["reason"])
        return ""

    def chosen(self) -> ReviewTab:
        """The valid tab, or the queue (the page then says why with a 400)."""
        if self.is_bound and self.is_valid() and self.cleaned_data["view"]:
            return ReviewTab(self.cleaned_data["view"])
        return ReviewTab.QUEUE

    def deployment_id(self) -> int | None:
        if self.is_bound and self.is_valid():
            return self.cleaned_data["deployment"]
        return None


class TakeNextForm(forms.Form):
    """The queue's "Take next": within the deployment shown, and only appeals on that tab."""

    deployment = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    level = forms.TypedChoiceField(
        choices=[("", "any"), ("1", "1"), ("2", "2")],
        coerce=int,
        empty_value=None,
        required=False,
        widget=forms.HiddenInput,
    )


class ClaimForm(forms.Form):
    pass


class ReleaseForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False, label="Why give it back? (optional)")


def probabilities_of(prediction: Any) -> list[tuple[str, float]]:
    """(class, probability) of a classifier's prediction, most likely first; [] when the
    prediction carries no numeric probabilities per class."""
    probabilities = prediction.get(PROBABILITIES_KEY) if isinstance(prediction, dict) else None
    if not isinstance(probabilities, dict):
        return []
    rows = [
        (str(name), float(p))
        for name, p in probabilities.items()
        if isinstance(p, int | float) and not isinstance(p, bool)
    ]
    if len(rows) != len(probabilities):
        return []
    return sorted(rows, key=lambda row: (-row[1], row[0]))


def correction_classes(prediction: Any) -> list[str]:
    """The classes a reviewer may correct a classifier's prediction to: the classes of its
    probabilities, but the one it predicted (overriding with it would be a confirmation). []
    when the prediction names no classes: the corrected output is then typed as JSON."""
    predicted = prediction.get(LABEL_KEY) if isinstance(prediction, dict) else None
    return [name for name, _ in probabilities_of(prediction) if name != str(predicted)]


class DecideForm(forms.Form):
    """Confirm the prediction, or override it with the corrected output: a select of the
    model's classes when the prediction names them, else a JSON object. The output field is
    named as the domain names it (`output`), so its refusals land next to it."""

    decision = forms.ChoiceField(
        choices=Decision.choices, widget=forms.RadioSelect, label="Decision"
    )
    output = forms.CharField(
        required=False,
        label="Corrected output (JSON)",
        help_text='Only for an override: the right answer, e.g. {"label": "approved"}.',
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
    )
    # Not required here: the domain says a decision needs a reason, and names the field.
    reason = forms.CharField(
        required=False,
        label="Reason",
        help_text="Why you decide so: whoever handles an appeal reads it.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args: Any, classes: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.classes = list(classes or [])
        if self.classes:
            self.fields["output"] = forms.ChoiceField(
                required=False,
                label="Corrected class",
                help_text="Only for an override: the class the model should have given.",
                choices=[("", "Choose the right class"), *((c, c) for c in self.classes)],
            )

    def clean_output(self) -> Any:
        value = self.cleaned_data.get("output")
        if value in (None, ""):
            return None
        if self.classes:
            return {LABEL_KEY: value}
        try:
            return json.loads(value)
        except ValueError as error:
            raise forms.ValidationError(f"is not valid JSON: {error}") from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # A confirmation keeps the prediction: whatever was left in the output field goes.
        if cleaned.get("decision") == Decision.CONFIRM:
            cleaned["output"] = None
        return cleaned
