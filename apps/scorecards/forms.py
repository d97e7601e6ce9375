from django import forms

from apps.scorecards.kpis import KPIS


class TargetForm(forms.Form):
    kpi = forms.ChoiceField(label="KPI", choices=[(k, v.label) for k, v in KPIS.items()])
    value = forms.FloatField(label="Target", required=False,
                             help_text="Rates as fractions (0.95 = 95 %), latency in ms, freshness in hours, MTTR in "
                                       "minutes; change-mode KPIs: the largest allowed rise (0.05 = 5 %). "
                                       "Empty: back to the tier's default.")
    reason = forms.CharField(label="Why", max_length=500, required=False)


class TargetUsersForm(forms.Form):
    target_users = forms.IntegerField(label="Target users", required=False, min_value=1,
                                      help_text="How many end users the feature is for (adoption's denominator).")
    reason = forms.CharField(label="Why", max_length=500, required=False)
