"""Forms of the experiment pages. Fields are parsed here; the rules (and their messages) are the services'."""

from __future__ import annotations

from django import forms

from apps.experiments.models import Unit

ARM_ROWS = 3


class ExperimentForm(forms.Form):
    prompt = forms.ChoiceField(label="Prompt", help_text="Requests for its control label are split.")
    name = forms.CharField(label="Name", max_length=200)
    hypothesis = forms.CharField(label="Hypothesis", required=False, widget=forms.Textarea(attrs={"rows": 2}))
    unit = forms.ChoiceField(label="Sticky per", choices=Unit.choices, initial=Unit.USER)
    control_label = forms.CharField(label="Control label", initial="production", max_length=40)
    mde = forms.FloatField(label="Smallest effect worth detecting", initial=0.05,
                           help_text="An absolute change in task success (0.05 = 5 points); tunes the test.")
    alpha = forms.FloatField(label="Significance level", initial=0.05)
    min_outcomes = forms.IntegerField(label="Outcomes per arm before a verdict", initial=100)

    def __init__(self, *args, prompts=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["prompt"].choices = [(p.name, p.name) for p in prompts]
        for i in range(ARM_ROWS):
            required = i < 2
            self.fields[f"arm{i}_key"] = forms.CharField(label="Key", required=required, max_length=40,
                                                         initial=("control", "candidate", "")[i])
            self.fields[f"arm{i}_weight"] = forms.IntegerField(label="Weight %", required=required,
                                                               initial=(90, 10, None)[i])
            self.fields[f"arm{i}_label"] = forms.CharField(label="Label", required=False, max_length=40,
                                                           initial=("production", "staging", "")[i])
            self.fields[f"arm{i}_version"] = forms.IntegerField(label="or version", required=False, min_value=1)
            self.fields[f"arm{i}_model"] = forms.CharField(label="Model (optional)", required=False, max_length=200)

    def arm_rows(self):
        return [[self[f"arm{i}_{part}"] for part in ("key", "weight", "label", "version", "model")]
                for i in range(ARM_ROWS)]

    def arms(self) -> list[dict]:
        data = self.cleaned_data
        return [{"key": data.get(f"arm{i}_key"), "weight": data.get(f"arm{i}_weight"),
                 "label": data.get(f"arm{i}_label"), "version": data.get(f"arm{i}_version"),
                 "model": data.get(f"arm{i}_model")} for i in range(ARM_ROWS) if data.get(f"arm{i}_key")]


class ReasonForm(forms.Form):
    reason = forms.CharField(label="Why", required=False, max_length=2000)


class PromoteForm(forms.Form):
    arm = forms.CharField(max_length=40)
    reason = forms.CharField(label="Why", required=False, max_length=2000)
