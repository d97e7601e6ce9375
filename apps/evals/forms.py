"""Forms of the evals pages. Domain rules live in services; forms parse and show errors next to fields."""

from __future__ import annotations

import json

from django import forms

from apps.evals.evaluators import kinds
from portal.safe_input import form_json


class JSONText(forms.CharField):
    """A textarea holding JSON; `kind` is "object" or "list"."""

    widget = forms.Textarea(attrs={"rows": 4, "class": "mono"})

    def __init__(self, *args, kind: str = "object", **kwargs):
        self.kind = kind
        kwargs.setdefault("required", False)
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, dict | list):
            return json.dumps(value, ensure_ascii=False, indent=1)
        return value

    def to_python(self, value):
        value = super().to_python(value)
        if not value or not value.strip():
            return {} if self.kind == "object" else []
        parsed = form_json(value)
        wanted = dict if self.kind == "object" else list
        if not isinstance(parsed, wanted):
            raise forms.ValidationError(f"Give a JSON {'object {…}' if self.kind == 'object' else 'list […]'}.")
        return parsed


class DatasetCreateForm(forms.Form):
    team = forms.ModelChoiceField(queryset=None, empty_label=None)
    name = forms.CharField(max_length=200, help_text="e.g. support/faq-golden")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    input_names = forms.CharField(required=False, label="Required inputs",
                                  help_text="Variables every item must give, comma-separated (optional)")

    def __init__(self, *args, teams, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams


class ItemForm(forms.Form):
    id = forms.CharField(required=False, max_length=100, label="Id",
                         help_text="Optional; stable across edits (generated if empty)")
    inputs = JSONText(label="Inputs", help_text='Variables as JSON, e.g. {"question": "How do refunds work?"}')
    expected = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Expected output",
                               help_text="Optional reference answer")
    contexts = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Context passages",
                               help_text="Optional, for RAG: one passage per paragraph (blank line between)")
    tags = forms.CharField(required=False, help_text="Comma-separated, e.g. adversarial, pii")
    message = forms.CharField(required=False, max_length=300, label="Change note")

    def item(self) -> dict:
        data = self.cleaned_data
        contexts = [p.strip() for p in (data.get("contexts") or "").replace("\r\n", "\n").split("\n\n")
                    if p.strip()]
        return {"id": data.get("id") or None, "inputs": data.get("inputs") or {},
                "expected": data.get("expected") or None, "contexts": contexts, "tags": data.get("tags") or ""}


class ImportForm(forms.Form):
    file = forms.FileField(help_text="CSV (header row) or JSONL (one JSON object per line)")
    mode = forms.ChoiceField(choices=[("append", "Append to the latest revision"),
                                      ("replace", "Replace every item")], initial="append")
    import_valid = forms.BooleanField(required=False, label="Import the valid rows even if some rows are bad")
    message = forms.CharField(required=False, max_length=300, label="Change note")


class EvaluatorForm(forms.Form):
    team = forms.ChoiceField()
    name = forms.CharField(max_length=120, help_text="e.g. answer-correct")
    kind = forms.ChoiceField(label="Type")
    params = JSONText(label="Parameters", help_text="JSON; see the example next to each type")
    threshold = forms.FloatField(required=False, min_value=0, max_value=1,
                                 help_text="An item passes when its score ≥ this (empty: the type's default)")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, teams, allow_shared: bool, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(str(t.pk), t.name) for t in teams]
        if allow_shared:
            choices.append(("", "Portal (shared with every team)"))
        self.fields["team"].choices = choices
        self.fields["kind"].choices = [(k.key, f"{k.label} ({k.family})") for k in kinds()]


class EvaluatorVersionForm(forms.Form):
    params = JSONText(label="Parameters")
    threshold = forms.FloatField(min_value=0, max_value=1)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class RunForm(forms.Form):
    version = forms.ChoiceField(label="Prompt version")
    dataset = forms.ChoiceField(label="Dataset")
    revision = forms.IntegerField(required=False, min_value=1, help_text="Empty: the latest revision")
    evaluators = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    model = forms.ChoiceField(required=False, help_text="Empty: the model in the version's config")
    temperature = forms.FloatField(required=False, min_value=0, max_value=2)
    max_tokens = forms.IntegerField(required=False, min_value=1)
    repetitions = forms.IntegerField(initial=1, min_value=1, max_value=10,
                                     help_text="Runs per item, for non-deterministic outputs (pass@1, pass^N)")
    concurrency = forms.IntegerField(initial=8, min_value=1, max_value=64)
    input_map = JSONText(label="Input map", help_text='Prompt variable → item input, e.g. {"question": "input"}')
    name = forms.CharField(required=False, max_length=200)

    def __init__(self, *args, versions, datasets, evaluators, models, suggest_url: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        if suggest_url:  # choosing a version or a dataset refills the input map (htmx; without it: on submit)
            for name in ("version", "dataset"):
                self.fields[name].widget.attrs.update({
                    "hx-get": suggest_url, "hx-trigger": "change", "hx-include": "#id_version, #id_dataset",
                    "hx-target": "#input-map-field", "hx-swap": "outerHTML",
                    "hx-sync": "closest form:replace"})  # the last choice wins, not the slowest answer
        self.fields["version"].choices = versions
        self.fields["dataset"].choices = [(str(d.pk), f"{d.name} (r{d.latest_revision})") for d in datasets]
        self.fields["evaluators"].choices = [(str(e.pk), f"{e.name} v{e.version} · {e.kind}") for e in evaluators]
        self.fields["model"].choices = [("", "— the version's model —")] + [(m, m) for m in models]

    def model_config(self) -> dict:
        data = self.cleaned_data
        return {k: data[k] for k in ("temperature", "max_tokens") if data.get(k) is not None}


class GateForm(forms.Form):
    datasets = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple,
                                         help_text="Each is pinned at its latest revision when you save")
    input_map = JSONText(label="Input map", help_text='Prompt variable → item input, e.g. {"question": "input"} '
                                                      "(for shared sets)")
    evaluators = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    thresholds = JSONText(label="Per-evaluator minimum pass rates",
                          help_text='Optional: {"evaluator id": 0.95}')
    min_pass_rate = forms.FloatField(initial=0.9, min_value=0, max_value=1, label="Minimum pass rate")
    max_regression = forms.FloatField(initial=0.05, min_value=0, max_value=1, label="Allowed regression",
                                      help_text="How much lower than the baseline's pass rate is tolerated")
    model = forms.ChoiceField(required=False, help_text="Empty: each version's configured model")
    repetitions = forms.IntegerField(initial=1, min_value=1, max_value=10)
    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Required when changing a gate: changes are audited and kept in its history")

    def __init__(self, *args, datasets, evaluators, models, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["datasets"].choices = [(str(d.pk), f"{d.name} (r{d.latest_revision})") for d in datasets]
        self.fields["evaluators"].choices = [(str(e.pk), f"{e.name} v{e.version} · {e.kind}") for e in evaluators]
        self.fields["model"].choices = [("", "— each version's model —")] + [(m, m) for m in models]


class JudgeLabelForm(forms.Form):
    output = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="Output")
    expected = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Reference")
    human_passed = forms.TypedChoiceField(choices=[("1", "Pass"), ("0", "Fail")], coerce=lambda v: v == "1",
                                          label="Human verdict", widget=forms.RadioSelect)


class PlaygroundSaveForm(forms.Form):
    dataset = forms.ChoiceField()
    expected = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}), label="Expected output",
                               help_text="Prefilled with the model's output: correct it if needed")
    tags = forms.CharField(required=False)

    def __init__(self, *args, datasets, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].choices = [(str(d.pk), d.name) for d in datasets]
