from django import forms

from apps.accounts.models import TokenScope


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Where the token is used, e.g. 'ci-pipeline'.")
    scope = forms.ChoiceField(choices=TokenScope.choices, initial=TokenScope.READ)
    days = forms.IntegerField(min_value=1, max_value=365, initial=90, label="Expires in (days)")
