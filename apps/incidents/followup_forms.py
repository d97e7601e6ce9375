"""Forms of the pages after (and around) the incident: the review, root causes, action items, runbooks, the
Art. 73 assessment and the metrics filters. Fields are parsed here; the rules are the services'."""

from __future__ import annotations

from django import forms

from apps.incidents.models import (
    ActionStatus,
    CauseCategory,
    IncidentType,
    ReleaseKind,
    RunbookFollowed,
    SeriousCategory,
)
from apps.incidents.services import MAX_ID

_DT = forms.DateTimeInput(attrs={"type": "datetime-local"})


class ReviewForm(forms.Form):
    summary = forms.CharField(label="Summary", required=False, widget=forms.Textarea(attrs={"rows": 3}))
    impact = forms.CharField(label="Impact", required=False, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Who was affected, how many, for how long.")
    contributing_factors = forms.CharField(label="Contributing factors", required=False,
                                           widget=forms.Textarea(attrs={"rows": 3}), help_text="One per line.")
    went_well = forms.CharField(label="What went well", required=False, widget=forms.Textarea(attrs={"rows": 2}))
    went_badly = forms.CharField(label="What went badly", required=False, widget=forms.Textarea(attrs={"rows": 2}))
    runbook_followed = forms.ChoiceField(label="Was the runbook followed?", required=False,
                                         choices=[("", "—"), *RunbookFollowed.choices])
    runbook_changes = forms.CharField(label="What to change in the runbook", required=False,
                                      widget=forms.Textarea(attrs={"rows": 2}))
    regression_escape = forms.BooleanField(label="A release caused it (regression escape)", required=False)
    release_kind = forms.ChoiceField(label="Release", required=False, choices=[("", "—"), *ReleaseKind.choices])
    release_ref = forms.CharField(label="Release reference", required=False, max_length=200,
                                  help_text="e.g. support/triage@v7, a deploy id.")
    released_at = forms.DateTimeField(label="Released at (UTC)", required=False, widget=_DT)

    def service_values(self) -> dict:
        data = dict(self.cleaned_data)
        data["contributing_factors"] = data["contributing_factors"].splitlines()
        return data


class RootCauseForm(forms.Form):
    category = forms.ChoiceField(label="Category", choices=CauseCategory.choices)
    description = forms.CharField(label="Root cause", max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class ActionItemForm(forms.Form):
    title = forms.CharField(label="Action item", max_length=300)
    owner = forms.TypedChoiceField(label="Owner", coerce=int)
    due_date = forms.DateField(label="Due", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, people=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].choices = [("", "—")] + [(p.pk, p.get_username()) for p in people]


class ActionStatusForm(forms.Form):
    status = forms.ChoiceField(choices=ActionStatus.choices)


class RunbookForm(forms.Form):
    kind = forms.ChoiceField(label="Incident type", choices=IncidentType.choices)
    title = forms.CharField(label="Title", max_length=200)
    body = forms.CharField(label="Runbook (Markdown)", max_length=50_000, widget=forms.Textarea(attrs={"rows": 18}))


class AssessmentForm(forms.Form):
    eu_users = forms.BooleanField(label="People in the EU / EEA are affected", required=False)
    category = forms.ChoiceField(label="Serious incident? (Art. 3(49))", required=False,
                                 choices=SeriousCategory.choices)
    widespread_infringement = forms.BooleanField(label="Widespread infringement (Art. 3(61))", required=False)
    aware_at = forms.DateTimeField(label="Became aware at (UTC)", required=False, widget=_DT,
                                   help_text="Empty: the incident's detected time.")
    member_states = forms.CharField(label="Member States where it occurred", required=False,
                                    help_text="Comma-separated, e.g. DE, FR.")
    causal_link = forms.CharField(label="Causal link between the AI system and the incident", required=False,
                                  widget=forms.Textarea(attrs={"rows": 2}))
    corrective_actions = forms.CharField(label="Corrective actions", required=False,
                                         widget=forms.Textarea(attrs={"rows": 2}))
    reporter = forms.CharField(label="Reporting organisation and contact", required=False, max_length=200)
    system_registration = forms.CharField(label="EU database registration (Art. 71)", required=False,
                                          max_length=100)
    reported_at = forms.DateTimeField(label="Reported to the authority at (UTC)", required=False, widget=_DT)
    report_reference = forms.CharField(label="Authority's reference", required=False, max_length=100)


class MetricsFilterForm(forms.Form):
    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="Until (excl.)", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    team = forms.CharField(label="Team", required=False, max_length=100)
    use_case = forms.IntegerField(label="Use case id", required=False, min_value=1, max_value=MAX_ID)

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise forms.ValidationError("“From” is before “Until”.")
        return data
