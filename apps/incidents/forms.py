"""Forms of the incident pages. Fields are parsed here; the rules (and their messages) are the services'."""

from __future__ import annotations

from django import forms

from apps.incidents.mitigations import DEFAULT_MESSAGE
from apps.incidents.models import IncidentType, MitigationKind, Severity, Status
from apps.incidents.switches import FILTER_FIELDS
from apps.rag.switches import ANSWER_MODES

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


_SCOPES = ("key", "feature", "use_case", "alias", "deployment", "collection", "prompt")
_STRICTER = [("", "—")] + [(v, v) for v in ("flag", "redact", "block")]


class MitigationForm(forms.Form):
    """One form for every switch: the fields a switch does not use are ignored (the service says what is missing)."""

    kind = forms.ChoiceField(label="Switch", choices=MitigationKind.choices)
    scope = forms.ChoiceField(label="Acts on", choices=[(s, s.replace("_", " ")) for s in _SCOPES],
                              help_text="Feature off, stricter filters: key, feature, use case. Rate limit: key. "
                                        "Model fallback: alias, deployment. Retrieval disabled: collection, use "
                                        "case. Prompt rollback: prompt.")
    key_id = forms.TypedChoiceField(label="Gateway key", coerce=int, required=False, empty_value=None)
    feature = forms.CharField(label="Feature", required=False, max_length=120,
                              help_text="For “feature”: the owning team's feature, as on its keys.")
    use_case_id = forms.IntegerField(label="Use case id", required=False, min_value=1)
    alias = forms.CharField(label="Alias or model (model fallback)", required=False, max_length=120)
    deployment_id = forms.IntegerField(label="Deployment id to leave out (model fallback)", required=False,
                                       min_value=1)
    to = forms.CharField(label="Serve with this alias or model (model fallback)", required=False, max_length=120)
    to_deployment_id = forms.IntegerField(label="…or this deployment id (model fallback)", required=False,
                                          min_value=1)
    collection_id = forms.IntegerField(label="Collection id (retrieval disabled)", required=False, min_value=1)
    answer = forms.ChoiceField(label="RAG answers (retrieval disabled)", required=False,
                               choices=list(ANSWER_MODES.items()))
    guard_input_pii = forms.ChoiceField(label="PII in the input (stricter filters)", required=False,
                                        choices=[c for c in _STRICTER if c[0] != "flag"])
    guard_injection = forms.ChoiceField(label="Injection (stricter filters)", required=False,
                                        choices=[c for c in _STRICTER if c[0] != "redact"])
    guard_output = forms.ChoiceField(label="Output scan (stricter filters)", required=False, choices=_STRICTER)
    prompt = forms.CharField(label="Prompt name (prompt rollback)", required=False, max_length=200)
    to_version = forms.IntegerField(label="Roll back to version (default: the previous)", required=False,
                                    min_value=1)
    message = forms.CharField(label="Message the product shows (feature off, retrieval disabled)", required=False,
                              max_length=300, initial=DEFAULT_MESSAGE)
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
        scope, kind = data["scope"], data["kind"]
        target = {"scope": scope}
        if scope == "key":
            target["key_id"] = data["key_id"]
        elif scope == "feature":
            target.update(team_id=incident.team_id, feature=data["feature"])
        elif scope == "use_case":
            target["use_case_id"] = data["use_case_id"]
        elif scope == "alias":
            target["name"] = data["alias"]
        elif scope == "deployment":
            target["deployment_id"] = data["deployment_id"]
        elif scope == "collection":
            target["collection_id"] = data["collection_id"]
        else:
            target["name"] = data["prompt"]
        message = data["message"] if data["message"] != DEFAULT_MESSAGE or kind == MitigationKind.FEATURE_OFF \
            else ""
        params = {
            MitigationKind.FEATURE_OFF: {"message": message},
            MitigationKind.RATE_LIMIT: {"requests_per_minute": data["requests_per_minute"],
                                        "requests_per_day": data["requests_per_day"]},
            MitigationKind.MODEL_FALLBACK: {"to": data["to"], "to_deployment_id": data["to_deployment_id"]},
            MitigationKind.RETRIEVAL_DISABLED: {"answer": data["answer"], "message": message},
            MitigationKind.STRICTER_FILTERS: {name: data[name] for name in FILTER_FIELDS},
            MitigationKind.PROMPT_ROLLBACK: {"to_version": data["to_version"]},
        }[kind]
        return {"kind": kind, "target": target, "params": params, "reason": data["reason"],
                "expires_in_minutes": data["expires_in_minutes"]}


class IncidentFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "Any"), ("active", "Not resolved"), *Status.choices])
    severity = forms.ChoiceField(required=False, choices=[("", "Any"), *Severity.choices])
    kind = forms.ChoiceField(label="Type", required=False, choices=[("", "Any"), *IncidentType.choices])
    team = forms.CharField(required=False, max_length=100)
    q = forms.CharField(label="Search", required=False, max_length=100)
