"""Forms of the review pages: they parse and speak the person's words; services validate and decide.

Service ValidationErrors land next to the field they name (`apps.core.forms.apply_service_errors`), through
each form's `apply_errors`.
"""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from apps.core.forms import apply_service_errors
from apps.reviews import conditions as predicates
from apps.reviews import rules, selectors, workflow
from apps.reviews.models import ConditionKind, VoteDecision
from apps.reviews.services import HEADER_FIELDS

EVIDENCE_MAX_BYTES = 10 * 1024 * 1024


class ServiceForm(forms.Form):
    """A form whose service refusals go next to the fields they name (`field_map`: service name → field)."""

    field_map: dict[str, str] = {}

    def apply_errors(self, exc: ValidationError) -> None:
        apply_service_errors(self, exc, self.field_map)


# --- intake ---------------------------------------------------------------------------------------------------


class IntakeForm(ServiceForm):
    """The intake: the header, the owning team (on create), and one `a_<id>` field per question of the current
    questionnaire. Answers are parsed here and validated by the service, all at once."""

    title = forms.CharField(required=False, strip=False)
    purpose = forms.CharField(required=False, strip=False)
    intended_uses = forms.CharField(required=False, strip=False)
    accountable_executive = forms.CharField(required=False, strip=False)
    lifecycle_stage = forms.CharField(required=False, strip=False)
    submit_now = forms.BooleanField(required=False)

    def __init__(self, *args, teams=None, **kwargs):
        super().__init__(*args, **kwargs)
        if teams is not None:
            self.fields["team"] = forms.ModelChoiceField(
                queryset=teams, error_messages={"required": "Choose one of your teams.",
                                                "invalid_choice": "Choose one of your teams."})
        self.questions = selectors.questionnaire_current().questions
        for q in self.questions:
            self.fields[f"a_{q['id']}"] = (forms.Field(required=False, widget=forms.MultipleHiddenInput)
                                           if q["type"] == "multi" else forms.CharField(required=False))
        self.field_map = {q["id"]: f"a_{q['id']}" for q in self.questions}

    @property
    def submitting(self) -> bool:
        self.is_valid()  # cleans once; "Save and submit" is read even when another field failed
        return bool(self.cleaned_data.get("submit_now"))

    def header(self) -> dict:
        """The header fields as typed (the service strips and checks them)."""
        self.is_valid()
        return {name: self.cleaned_data.get(name) or "" for name in HEADER_FIELDS}

    def answers(self) -> dict:
        """The answers given, empty ones left out, as the service takes them."""
        self.is_valid()
        out = {}
        for q in self.questions:
            value = self.cleaned_data.get(f"a_{q['id']}")
            if value not in (None, "", []):
                out[q["id"]] = value
        return out

    def loose_answers(self) -> dict:
        """Answers as typed, yes/no read as booleans, for deciding which follow-ups to show (never stored)."""
        return {key: (value == "true" if value in ("true", "false") else value)
                for key, value in self.answers().items()}

    def error_dict(self) -> dict:
        """Errors by the names the intake page uses: header fields, `team`, question ids, `__all__`."""
        prefix = {f"a_{q['id']}": q["id"] for q in self.questions}
        return {prefix.get(name, name): list(messages) for name, messages in self.errors.items()}


# --- the use-case page --------------------------------------------------------------------------------------------


class VoteForm(ServiceForm):
    decision = forms.ChoiceField(choices=VoteDecision.choices, widget=forms.RadioSelect,
                                 error_messages={"required": "Choose your vote: approve, approve with conditions or "
                                                             "reject.",
                                                 "invalid_choice": "Choose your vote: approve, approve with "
                                                                   "conditions or reject."})
    rationale = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}),
                                error_messages={"required": "Say why you vote this way (the team reads it)."})
    seat = forms.CharField(required=False)


class ConditionForm(ServiceForm):
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


class WaiverForm(ServiceForm):
    control = forms.CharField(error_messages={"required": "Choose the control to waive."})
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}),
                             error_messages={"required": "Say why the council waives this control."})


class TransitionForm(ServiceForm):
    """One of the page's action buttons (request info, suspend, withdraw, …), with its note."""

    name = forms.ChoiceField(choices=[(t.name, t.label) for t in workflow.TRANSITIONS.values() if t.name != "submit"],
                             error_messages={"required": "Choose one of the actions on the page.",
                                             "invalid_choice": "Choose one of the actions on the page."})
    note = forms.CharField(required=False)


class TierChangeForm(ServiceForm):
    to_tier = forms.ChoiceField(choices=[(t, rules.TIER_LABELS[t]) for t in rules.TIER_ORDER],
                                error_messages={"required": f"Choose one of: {', '.join(rules.TIER_ORDER)}.",
                                                "invalid_choice": f"Choose one of: {', '.join(rules.TIER_ORDER)}."})
    justification = forms.CharField(required=False)


class TierDecisionForm(ServiceForm):
    approve = forms.ChoiceField(choices=[("yes", "Sign off"), ("no", "Refuse")],
                                error_messages={"required": "Sign the lower tier off or refuse it.",
                                                "invalid_choice": "Sign the lower tier off or refuse it."})

    @property
    def approved(self) -> bool:
        return self.cleaned_data["approve"] == "yes"


class EvidenceForm(ServiceForm):
    url = forms.CharField(required=False)
    file = forms.FileField(required=False, error_messages={"invalid": "Upload a file, or link to the evidence.",
                                                           "empty": "The file is empty."})
    note = forms.CharField(required=False)

    def __init__(self, *args, condition_id: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.condition_id = condition_id

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if upload is not None and upload.size > EVIDENCE_MAX_BYTES:
            raise ValidationError("Keep evidence files under 10 MB; link to larger ones.")
        return upload


class CommentForm(ServiceForm):
    body = forms.CharField(required=False, strip=False)


class LinkForm(ServiceForm):
    """Link one prompt or collection (its id in the field named `target`), or unlink one (`unlink`)."""

    unlink = forms.IntegerField(required=False, min_value=1,
                                error_messages={"invalid": "Choose a link to remove.",
                                                "min_value": "Choose a link to remove."})

    def __init__(self, *args, target: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.target = target
        choose = f"Choose a {target} to link."
        self.fields[target] = forms.IntegerField(required=False, min_value=1, error_messages={
            "invalid": choose, "min_value": choose})

    def clean(self):
        data = super().clean()
        if not self.errors and not data.get("unlink") and not data.get(self.target):
            self.add_error(self.target, f"Choose a {self.target} to link.")
        return data

    def not_found(self) -> None:
        self.add_error(self.target, f"Choose a {self.target} to link.")

