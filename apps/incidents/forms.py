"""Forms of the incident pages. Fields are parsed here; the rules (and their messages) are the services'."""

from __future__ import annotations

import copy
import json

from django import forms

from apps.incidents import mitigations
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
                              help_text="Feature off, stricter filters: key, feature, use case, prompt. Rate limit: key. "
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
    prompt = forms.CharField(label="Prompt name (feature off, stricter filters, prompt rollback)", required=False,
                             max_length=200)
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
        self.fields["scope"].widget.attrs.update({  # "Acts on" offers what the chosen switch can act on
            "data-options-by": "kind",
            "data-options": json.dumps({str(kind): list(mitigations.scopes_of(kind)) for kind in mitigations.kinds()}),
        })

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
        return {"kind": kind, "target": target, "params": switch_params(kind, data), "reason": data["reason"],
                "expires_in_minutes": data["expires_in_minutes"]}


# The settings each switch reads (its service `params`) and the target field of each scope: one definition, read
# by switch_params and by the forms' progressive disclosure (a field shows only for the switches and scopes that
# use it: static/portal/portal.js `data-show-when`; without script every field shows and the service ignores the
# ones a switch does not use).
KIND_FIELDS = {
    MitigationKind.FEATURE_OFF: ("message",),
    MitigationKind.RATE_LIMIT: ("requests_per_minute", "requests_per_day"),
    MitigationKind.MODEL_FALLBACK: ("to", "to_deployment_id"),
    MitigationKind.RETRIEVAL_DISABLED: ("answer", "message"),
    MitigationKind.STRICTER_FILTERS: FILTER_FIELDS,
    MitigationKind.PROMPT_ROLLBACK: ("to_version",),
}
SCOPE_FIELDS = {"key": "key_id", "feature": "feature", "use_case": "use_case_id", "alias": "alias",
                "deployment": "deployment_id", "collection": "collection_id", "prompt": "prompt"}


def switch_params(kind: str, data: dict) -> dict:
    """The service's `params` of a switch of `kind` from a form's cleaned data (the fields of MitigationForm)."""
    params = {name: data[name] for name in KIND_FIELDS[kind]}
    if "message" in params and kind != MitigationKind.FEATURE_OFF and params["message"] == DEFAULT_MESSAGE:
        params["message"] = ""  # the default wording is feature off's; retrieval disabled has its own
    return params


def _show_when(fields: dict) -> None:
    """Mark each conditional field with the switches (kind) or scope that use it."""
    kinds_of: dict[str, list[str]] = {}
    for kind, names in KIND_FIELDS.items():
        for name in names:
            kinds_of.setdefault(name, []).append(str(kind))
    for name, field in fields.items():
        if name in kinds_of:
            field.show_when = "kind=" + ",".join(kinds_of[name])
    for scope, name in SCOPE_FIELDS.items():
        if name in fields:
            fields[name].show_when = f"scope={scope}"


_show_when(MitigationForm.base_fields)


# The settings of the switches an object page offers (MitigationForm's fields: one definition of each).
_OBJECT_SETTINGS = ("message", "answer", "guard_input_pii", "guard_injection", "guard_output", "requests_per_minute",
                    "requests_per_day", "to_version", "expires_in_minutes", "reason")
NEW = "new"


class ObjectMitigationForm(forms.Form):
    """A switch from an object's page (use case, prompt, key, collection): the incident it belongs to — an open
    one, or a new one declared with it — the switch (those that act on this object) and its settings."""

    incident = forms.ChoiceField(label="Incident", help_text="Every switch belongs to an incident (its timeline and "
                                                             "audit trail).")
    title = forms.CharField(label="…or declare: title", required=False, max_length=200)
    incident_kind = forms.ChoiceField(label="Type", required=False, choices=IncidentType.choices)
    severity = forms.TypedChoiceField(label="Severity", required=False, coerce=int, choices=Severity.choices,
                                      initial=Severity.SEV2, empty_value=None)
    kind = forms.ChoiceField(label="Switch")

    def __init__(self, *args, incidents=(), kinds=(), may_declare=False, **kwargs):
        super().__init__(*args, **kwargs)
        for name in _OBJECT_SETTINGS:
            self.fields[name] = copy.deepcopy(MitigationForm.base_fields[name])
        self.fields["incident"].choices = [(str(i.pk), f"{i.reference} {i.title}") for i in incidents] + \
            ([(NEW, "Declare a new incident (below)")] if may_declare else [])
        self.fields["kind"].choices = [(k, MitigationKind(k).label) for k in kinds]
        if not may_declare:
            for name in ("title", "incident_kind", "severity"):
                del self.fields[name]

    def clean(self):
        data = super().clean()
        if data.get("incident") == NEW and not data.get("title", "").strip():
            self.add_error("title", "Give the new incident a title (or choose an open incident).")
        return data

    def declared(self) -> dict | None:
        """The new incident's fields, or None when an open one was chosen."""
        data = self.cleaned_data
        if data["incident"] != NEW:
            return None
        return {"title": data["title"], "kind": data["incident_kind"] or IncidentType.OTHER,
                "severity": data["severity"] or Severity.SEV2}


class IncidentFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "Any"), ("active", "Not resolved"), *Status.choices])
    severity = forms.ChoiceField(required=False, choices=[("", "Any"), *Severity.choices])
    kind = forms.ChoiceField(label="Type", required=False, choices=[("", "Any"), *IncidentType.choices])
    team = forms.CharField(required=False, max_length=100)
    q = forms.CharField(label="Search", required=False, max_length=100)
