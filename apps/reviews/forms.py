"""Forms of the use-case page: they parse and speak the person's words; services validate and decide.

Service ValidationErrors land next to the field they name (`apps.core.forms.apply_service_errors`).
"""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from apps.core.forms import apply_service_errors
from apps.reviews import conditions as predicates
from apps.reviews.models import ConditionKind, VoteDecision


class VoteForm(forms.Form):
    decision = forms.ChoiceField(choices=VoteDecision.choices, widget=forms.RadioSelect,
                                 error_messages={"required": "Choose your vote: approve, approve with conditions or "
                                                             "reject.",
                                                 "invalid_choice": "Choose your vote: approve, approve with "
                                                                   "conditions or reject."})
    rationale = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}),
                                error_messages={"required": "Say why you vote this way (the team reads it)."})
    seat = forms.CharField(required=False)

    def apply_errors(self, exc: ValidationError) -> None:
        apply_service_errors(self, exc)


class ConditionForm(forms.Form):
    """Manual by default; an automatic condition needs its check and that check's parameters."""

    title = forms.CharField(max_length=200, label="Condition",
                            error_messages={"required": "Say what the condition is."})
    how_met = forms.CharField(required=False, label="How it is met")
    control = forms.ChoiceField(required=False, label="Control it evidences")
    owner = forms.ModelChoiceField(queryset=None, label="Owner",
                                   error_messages={"required": "Name the person who meets the condition.",
                                                   "invalid_choice": "Name the person who meets the condition."})
    due_date = forms.DateField(label="Due date", error_messages={"required": "Give a due date.",
                                                                 "invalid": "Give a due date (a calendar date)."})
    kind = forms.ChoiceField(choices=[(ConditionKind.MANUAL, ConditionKind.MANUAL.label),
                                      (ConditionKind.AUTOMATIC, ConditionKind.AUTOMATIC.label)],
                             initial=ConditionKind.MANUAL, label="Kind",
                             error_messages={"invalid_choice": "Choose who checks it: a reviewer or the portal."})
    predicate = forms.ChoiceField(required=False, label="Automatic check",
                                  error_messages={"invalid_choice": "Choose one of the listed checks."})

    def __init__(self, *args, controls=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["control"].choices = [("", "—"), *((c["key"], c["name"]) for c in controls)]
        self.fields["owner"].queryset = get_user_model().objects.filter(is_active=True).order_by("username")
        self.fields["predicate"].choices = [("", "—"), *((p.key, p.label) for p in predicates.predicates())]
        for p in predicates.predicates():
            for name, spec in p.params_schema.items():
                self.fields[f"p_{p.key}_{name}"] = forms.CharField(required=False, label=spec.get("label", name))

    def clean(self):
        data = super().clean()
        if data.get("kind") == ConditionKind.AUTOMATIC and not data.get("predicate"):
            self.add_error("predicate", "Choose the check the portal runs, or make it a condition a reviewer "
                                        "accepts.")
        return data

    def params(self) -> dict:
        key = self.cleaned_data.get("predicate") or ""
        pred = predicates.predicate(key)
        return {name: self.cleaned_data.get(f"p_{key}_{name}", "") for name in (pred.params_schema if pred else {})}

    def apply_errors(self, exc: ValidationError) -> None:
        """A parameter error ({'max_usd': [...]}) goes next to that parameter's input."""
        prefix = f"p_{self.cleaned_data.get('predicate') or ''}_"
        apply_service_errors(self, exc, {name.removeprefix(prefix): name for name in self.fields
                                         if name.startswith(prefix)})


class WaiverForm(forms.Form):
    control = forms.CharField(error_messages={"required": "Choose the control to waive."})
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}),
                             error_messages={"required": "Say why the council waives this control."})

    def apply_errors(self, exc: ValidationError) -> None:
        apply_service_errors(self, exc)
