"""Forms of the red-team pages. Domain rules live in services; forms parse and show errors next to fields."""

from __future__ import annotations

from django import forms

from apps.evals.forms import JSONText
from apps.redteam.models import Triage


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=200)
    target_kind = forms.ChoiceField(choices=[("prompt_version", "A prompt version"),
                                             ("gateway_key", "A gateway key and alias")], initial="prompt_version",
                                    label="Target")
    prompt_version = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Prompt version")
    variables = JSONText(label="Variables", help_text='The prompt\'s other variables, e.g. {"product": "Acme"}')
    attack_variable = forms.CharField(required=False, max_length=100, label="Attack variable",
                                      help_text="The variable the attack goes in (empty: a last user message)")
    gateway_key = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Gateway key")
    system_prompt = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                    label="System prompt (gateway target)",
                                    help_text="What the application behind the key sends; the canary is added")
    model = forms.CharField(max_length=120, help_text="A chat model or alias of the catalog")
    library_version = forms.ChoiceField(required=False, label="Probe library")
    include_team_probes = forms.BooleanField(required=False, initial=True, label="Add the team's own probes")
    strategies = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    evaluators = forms.TypedMultipleChoiceField(coerce=int, required=False, widget=forms.CheckboxSelectMultiple,
                                                label="Policy evaluators (evals)")
    judge = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="LLM judge (evals)")
    concurrency = forms.IntegerField(min_value=1, max_value=200, required=False,
                                     help_text="Attacks in flight (the provider's limit caps it)")
    rag_collection = forms.TypedChoiceField(
        coerce=int, required=False, empty_value=None, label="RAG collection (indirect injection)",
        help_text="Attacks that plant a document plant it in a copy-on-write overlay of this collection and get "
                  "what its retrieval returns; empty: the document itself is the retrieved context")

    def __init__(self, *args, versions, keys, libraries, strategies, evaluators, judges, collections=(), **kwargs):
        super().__init__(*args, **kwargs)
        versions = list(versions)
        self.version_prompts = {v.pk: v.prompt_id for v in versions}
        self.fields["prompt_version"].choices = [("", "—")] + [(v.pk, f"{v.prompt.name} v{v.number}")
                                                              for v in versions]
        self.fields["gateway_key"].choices = [("", "—")] + [(k.pk, f"{k.name} ({k.team.name})") for k in keys]
        self.fields["library_version"].choices = [("", "none")] + [(v, v) for v in libraries]
        self.fields["strategies"].choices = [(s, s) for s in strategies]
        self.fields["evaluators"].choices = [(e.pk, f"{e.name} ({e.kind})") for e in evaluators]
        self.fields["judge"].choices = [("", "none")] + [(e.pk, e.name) for e in judges]
        self.fields["rag_collection"].choices = [("", "none (in-memory context)")] + [
            (c.pk, f"{c.name} ({c.team.name})") for c in collections]


class TriageForm(forms.Form):
    decision = forms.ChoiceField(choices=[c for c in Triage.choices if c[0]])
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class ToDatasetForm(forms.Form):
    dataset = forms.TypedChoiceField(coerce=int)

    def __init__(self, *args, datasets, **kwargs):
        kwargs.setdefault("auto_id", False)  # one form per finding row: no repeated ids
        super().__init__(*args, **kwargs)
        self.fields["dataset"].choices = [(d.pk, d.name) for d in datasets]


class ProbeImportForm(forms.Form):
    team = forms.TypedChoiceField(coerce=int)
    file = forms.FileField(help_text="JSONL: one probe a line, {\"id\", \"category\", \"text\"} (owasp, harm, "
                                     "marker optional)")
    replace = forms.BooleanField(required=False, label="Replace the team's probes")

    def __init__(self, *args, teams, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [(t.pk, t.name) for t in teams]


class PolicyForm(forms.Form):
    team = forms.TypedChoiceField(coerce=int)
    default_max_asr = forms.FloatField(min_value=0, max_value=1, label="Largest ASR upper bound (any category)")
    max_asr = JSONText(label="Per category", help_text='e.g. {"prompt-injection": 0.05}')
    min_judge_kappa = forms.FloatField(min_value=0, max_value=1, label="Judge κ a gate may rely on")

    def __init__(self, *args, teams, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [(t.pk, t.name) for t in teams]


class EvidenceForm(forms.Form):
    condition = forms.TypedChoiceField(coerce=int)

    def __init__(self, *args, conditions, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["condition"].choices = [(c.pk, f"{c.use_case.title}: {c.title}") for c in conditions]
