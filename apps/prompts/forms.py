"""Forms of the prompt pages. They parse; services validate and say what is wrong (mapped back to fields)."""

from __future__ import annotations

import json
import re

from django import forms
from django.core.exceptions import ValidationError

from apps.accounts.models import Team
from apps.core.safe_input import form_json
from apps.prompts.content import RESPONSE_FORMATS, ROLES, Draft
from apps.prompts.models import PromptKind, WebhookEvent, validate_prompt_name

PAGE_SIZES = (25, 50, 100)


class CatalogFilterForm(forms.Form):
    q = forms.CharField(required=False, label="Search",
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "name, description, template…",
                                                      "data-search": "1", "autocomplete": "off"}))
    team = forms.ChoiceField(required=False)
    tag = forms.ChoiceField(required=False)
    label = forms.ChoiceField(required=False)
    kind = forms.ChoiceField(required=False, label="Type", choices=[("", "Any"), *PromptKind.choices])
    sort = forms.ChoiceField(required=False, choices=[
        ("", "Best match / last change"), ("-updated", "Last change"), ("name", "Name A–Z"), ("-name", "Name Z–A"),
        ("team", "Team"), ("versions", "Most versions")])
    per_page = forms.TypedChoiceField(required=False, label="Per page", coerce=int, empty_value=PAGE_SIZES[0],
                                      choices=[(n, n) for n in PAGE_SIZES])

    def __init__(self, *args, teams=(), tags=(), labels=(), extra_filters=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [("", "Any team"), *[(t.slug, t.name) for t in teams]]
        self.fields["tag"].choices = [("", "Any tag"), *[(t, t) for t in tags]]
        self.fields["label"].choices = [("", "Any label"), *[(lb, lb) for lb in labels]]
        self.extra_keys = []
        for f in extra_filters:
            self.fields[f"x_{f.key}"] = forms.ChoiceField(required=False, label=f.label,
                                                          choices=[("", "Any"), *f.choices_list])
            self.extra_keys.append(f.key)

    def cleaned(self) -> dict:
        """The valid values; a team, tag or label not in the choices still filters (and finds nothing)."""
        if not self.is_bound:
            return {}
        self.is_valid()
        data = dict(self.cleaned_data)
        for key in ("team", "tag", "label"):
            if key in self.errors:
                data[key] = self.data.get(key, "")
        return data


def _json_field(label: str, help_text: str, rows: int = 4) -> forms.CharField:
    return forms.CharField(required=False, label=label, help_text=help_text,
                           widget=forms.Textarea(attrs={"rows": rows, "spellcheck": "false"}))


class VersionForm(forms.Form):
    """The content of a version: template (or messages, see MessageFormSet), schema, model config, message."""

    template = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false"}),
                               help_text='Jinja2. Variables: {{ name }}. Include another prompt: '
                                         '{% include_prompt "shared/tone" %} (production) or label="…" / version=N.')
    variables_schema = _json_field("Variables schema (JSON, optional)",
                                   'e.g. {"type": "object", "required": ["ticket"], "properties": '
                                   '{"ticket": {"type": "string"}}}')
    model = forms.CharField(required=False, max_length=120, help_text="A model from the catalog",
                            widget=forms.TextInput(attrs={"list": "catalog-models"}))
    temperature = forms.FloatField(required=False, min_value=0, max_value=2)
    max_tokens = forms.IntegerField(required=False, min_value=1, max_value=200_000, label="Max tokens")
    top_p = forms.FloatField(required=False, min_value=0, max_value=1, label="Top p")
    response_format = forms.ChoiceField(required=False, choices=[(f, f) for f in RESPONSE_FORMATS])
    response_schema = _json_field("Response JSON schema", 'For json_schema: {"name": "triage", "schema": {…}}')
    cache = forms.BooleanField(required=False, label="Cache answers",
                               help_text="The same request at temperature 0 is answered from the response cache "
                                         "(playground, evals, RAG answers): no provider call, cost 0.")
    tools = _json_field("Tools (JSON list)", 'e.g. [{"type": "function", "function": {"name": "lookup_order", '
                                             '"parameters": {"type": "object"}}}]')
    commit_message = forms.CharField(required=False, max_length=500, label="Commit message",
                                     widget=forms.TextInput(attrs={"placeholder": "What changed and why"}))

    JSON_FIELDS = ("variables_schema", "response_schema", "tools")

    def clean(self):
        data = super().clean()
        for name in self.JSON_FIELDS:
            raw = (data.get(name) or "").strip()
            if not raw:
                data[name] = None
                continue
            try:
                data[name] = form_json(raw)
            except ValidationError as exc:
                self.add_error(name, exc)
        return data

    def config(self) -> dict:
        data = self.cleaned_data
        config = {key: data.get(key) for key in ("model", "temperature", "max_tokens", "top_p")
                  if data.get(key) not in (None, "")}
        fmt = data.get("response_format") or "text"
        if fmt == "json_object":
            config["response_format"] = "json_object"
        elif fmt == "json_schema":
            config["response_format"] = {"type": "json_schema", "json_schema": data.get("response_schema") or {}}
        if data.get("tools"):
            config["tools"] = data["tools"]
        if data.get("cache"):
            config["cache"] = self.initial.get("cache_config") or True  # keep a version's TTL/sampled settings
        return config

    def draft(self, kind: str, messages: list[dict]) -> Draft:
        return Draft(kind=kind, template=self.cleaned_data.get("template") or "", messages=messages,
                     variables_schema=self.cleaned_data.get("variables_schema"), config=self.config())

    @classmethod
    def initial_from(cls, version) -> dict:
        if version is None:
            return {}
        config = version.config or {}
        fmt = config.get("response_format") or {}
        return {
            "template": version.template,
            "variables_schema": json.dumps(version.variables_schema, indent=2) if version.variables_schema else "",
            "model": config.get("model", ""), "temperature": config.get("temperature"),
            "max_tokens": config.get("max_tokens"), "top_p": config.get("top_p"),
            "response_format": fmt.get("type", "text") if isinstance(fmt, dict) else fmt,
            "response_schema": json.dumps(fmt.get("json_schema"), indent=2) if isinstance(fmt, dict)
            and fmt.get("json_schema") else "",
            "tools": json.dumps(config["tools"], indent=2) if config.get("tools") else "",
            "cache": bool(config.get("cache")), "cache_config": config.get("cache"),
        }

    def add_service_errors(self, exc: ValidationError, messages_formset=None) -> None:
        """Put each message of the service's ValidationError next to the field it is about."""
        for key, messages in exc.message_dict.items():
            for message in messages:
                if key == "config":
                    match = re.match(r"config\.(\w+)", message)
                    name = match.group(1) if match else None
                    name = {"response_format": "response_format", "tools": "tools"}.get(name, name)
                    self.add_error(name if name in self.fields else None, message)
                elif key == "messages" and messages_formset is not None:
                    messages_formset.errors_text.append(message)
                elif key in self.fields:
                    self.add_error(key, message)
                else:
                    self.add_error(None, message)


class MessageForm(forms.Form):
    role = forms.ChoiceField(choices=[(r, r) for r in ROLES], required=False)
    content = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}))


class _MessageFormSet(forms.BaseFormSet):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.errors_text: list[str] = []

    def messages(self) -> list[dict]:
        return [{"role": f.cleaned_data.get("role") or "user", "content": f.cleaned_data["content"]}
                for f in self.forms if f.is_valid() and (f.cleaned_data.get("content") or "").strip()]


MessageFormSet = forms.formset_factory(MessageForm, formset=_MessageFormSet, extra=2, max_num=50)


def message_initial(version) -> list[dict]:
    if version is None or not version.messages:
        return [{"role": "system", "content": ""}, {"role": "user", "content": ""}]
    return [{"role": m["role"], "content": m["content"]} for m in version.messages]


class PromptCreateForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None)
    name = forms.CharField(max_length=200, widget=forms.TextInput(attrs={"placeholder": "support/triage-summary"}),
                           help_text="Lower-case segments separated by '/', e.g. support/triage-summary")
    kind = forms.ChoiceField(label="Type", choices=PromptKind.choices, initial=PromptKind.TEXT)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    tags = forms.CharField(required=False, help_text="Comma-separated")

    def __init__(self, *args, teams=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams if teams is not None else Team.objects.none()

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        validate_prompt_name(name)
        return name


class PromptEditForm(forms.Form):
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    tags = forms.CharField(required=False, help_text="Comma-separated")


class LabelSetForm(forms.Form):
    label = forms.CharField(max_length=40, widget=forms.TextInput(attrs={"placeholder": "staging"}))
    version = forms.IntegerField(min_value=1)
    reason = forms.CharField(required=False, max_length=500)


class PromoteForm(forms.Form):
    version = forms.IntegerField(min_value=1)
    label = forms.CharField(max_length=40, initial="production", widget=forms.HiddenInput)
    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="What changes for users, and how you checked it")


class DecisionForm(forms.Form):
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class ExpediteForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="Why this cannot wait for the gates. Kept in the audit log.")


class PolicyForm(forms.Form):
    approvals_required = forms.IntegerField(min_value=1, max_value=10, label="Approvals required")
    not_configured_blocks = forms.BooleanField(required=False,
                                               label="A check that is not configured yet blocks promotion")
    lint_warnings_block = forms.BooleanField(required=False, label="Lint warnings block (not only errors)")
    protected_labels = forms.CharField(required=False, label="Other protected labels",
                                       help_text="Comma-separated; production is always protected")
    advisory_checks = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                                label="Advisory checks (reported, never blocking)")

    def __init__(self, *args, checks=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["advisory_checks"].choices = [(c.key, c.label) for c in checks if c.key != "approvals"]


class WebhookForm(forms.Form):
    url = forms.URLField(max_length=500, label="URL", assume_scheme="https")
    events = forms.MultipleChoiceField(choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple,
                                       initial=list(WebhookEvent.values))
    description = forms.CharField(required=False, max_length=200)


class ImportForm(forms.Form):
    file = forms.FileField(label="YAML file", help_text="As written by Export; validated before anything is written")
    dry_run = forms.BooleanField(required=False, label="Dry run (check and report, change nothing)")


class LabelAtForm(forms.Form):
    label = forms.CharField(max_length=40, initial="production")
    at = forms.DateTimeField(label="At (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                             input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"])
