"""Forms of the incident pages. Fields are parsed here; the rules (and their messages) are the services'."""

from __future__ import annotations

from django import forms

from apps.incidents.mitigations import DEFAULT_MESSAGE, SCOPES
from apps.incidents.models import IncidentType, MitigationKind, Severity, Status

_LIST_HELP = "Comma-separated."


class DeclareForm(forms.Form):
    team = forms.ChoiceField(label="Owning team", help_text="Its engineers run the response; Sev1/Sev2 page them.")
    title = forms.CharField(label="Title", max_length=200)
    kind = forms.ChoiceField(label="Type", choices=IncidentType.choices)
    severity = forms.TypedChoiceField(label="Severity", coerce=int, choices=Severity.choices)
    summary = forms.CharField(label="What is happening", required=False, widget=forms.Textarea(attrs={"rows": 3}))
    use_cases = forms.CharField(label="Affected use cases (ids)", required=False, help_text=_LIST_HELP)
    features = forms.CharField(label="Affected features", required=False, help_text=_LIST_HELP)
    deployments = forms.CharField(label="Models / aliases / deployments", required=False, help_text=_LIST_HELP)
    prompt_versions = forms.CharField(label="Prompt versions", required=False, help_text="e.g. support/triage@v3")
    collections = forms.CharField(label="Collections (ids)", required=False, help_text=_LIST_HELP)
    tenants = forms.CharField(label="Tenants", required=False, help_text=_LIST_HELP)
    customer_impact = forms.CharField(label="Customer impact", required=False,
                                      widget=forms.Textarea(attrs={"rows": 2}))
    harm_categories = forms.CharField(label="Harm categories", required=False, help_text=_LIST_HELP)
    affected_groups = forms.CharField(label="Affected groups", required=False, help_text=_LIST_HELP)
    started_at = forms.DateTimeField(label="Started at (UTC)", required=False,
                                     widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    near_miss = forms.BooleanField(label="Near-miss (caught before users were harmed)", required=False)

    def __init__(self, *args, teams=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [(t.slug, t.name) for t in teams]

    def clean_use_cases(self):
        raw = [part.strip().lstrip("#") for part in self.cleaned_data["use_cases"].split(",") if part.strip()]
        if not all(part.isdigit() for part in raw):
            raise forms.ValidationError("Use case ids are whole numbers, comma-separated.")
        return [int(part) for part in raw]


class MoveForm(forms.Form):
    to = forms.ChoiceField(choices=Status.choices)
    note = forms.CharField(required=False, max_length=5000)


class NoteForm(forms.Form):
    text = forms.CharField(label="Add to the timeline", max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))


class MitigationForm(forms.Form):
    kind = forms.ChoiceField(label="Switch", choices=MitigationKind.choices)
    scope = forms.ChoiceField(label="Acts on", choices=[(s, s.replace("_", " ")) for s in
                                                        SCOPES[MitigationKind.FEATURE_OFF]])
    key_id = forms.TypedChoiceField(label="Gateway key", coerce=int, required=False, empty_value=None)
    feature = forms.CharField(label="Feature", required=False, max_length=120,
                              help_text="For “feature”: the owning team's feature, as on its keys.")
    use_case_id = forms.IntegerField(label="Use case id", required=False, min_value=1)
    message = forms.CharField(label="Message the product shows (feature off)", required=False, max_length=300,
                              initial=DEFAULT_MESSAGE)
    requests_per_minute = forms.IntegerField(label="Requests / minute (rate limit)", required=False, min_value=1)
    requests_per_day = forms.IntegerField(label="Requests / day (rate limit)", required=False, min_value=1)
    expires_in_minutes = forms.IntegerField(label="Expires in (minutes)", required=False, min_value=5,
                                            max_value=10_080, initial=240)
    reason = forms.CharField(label="Why", required=False, max_length=2000)

    def __init__(self, *args, keys=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["key_id"].choices = [("", "—")] + [(k.pk, f"{k.name} ({k.prefix}) · {k.team.name}")
                                                       for k in keys]

    def service_arguments(self, incident) -> dict:
        """The service's keyword arguments for this form's values."""
        data = self.cleaned_data
        scope = data["scope"]
        target = {"scope": scope}
        if scope == "key":
            target["key_id"] = data["key_id"]
        elif scope == "feature":
            target.update(team_id=incident.team_id, feature=data["feature"])
        else:
            target["use_case_id"] = data["use_case_id"]
        params = {"message": data["message"]} if data["kind"] == MitigationKind.FEATURE_OFF else \
            {"requests_per_minute": data["requests_per_minute"], "requests_per_day": data["requests_per_day"]}
        return {"kind": data["kind"], "target": target, "params": params, "reason": data["reason"],
                "expires_in_minutes": data["expires_in_minutes"]}


class IncidentFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "Any"), ("active", "Not resolved"), *Status.choices])
    severity = forms.ChoiceField(required=False, choices=[("", "Any"), *Severity.choices])
    kind = forms.ChoiceField(label="Type", required=False, choices=[("", "Any"), *IncidentType.choices])
    team = forms.CharField(required=False, max_length=100)
    q = forms.CharField(label="Search", required=False, max_length=100)
