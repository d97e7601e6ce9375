from django import forms

from apps.audit.selectors import AuditFilters


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False)
    team = forms.CharField(required=False, help_text="Team slug")
    action = forms.CharField(required=False, help_text="Prefix, e.g. 'prompt.'")
    object_type = forms.CharField(required=False, help_text="e.g. accounts.team")
    object_id = forms.CharField(required=False)
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "The end date is before the start date.")
        return data

    def filters(self) -> AuditFilters:
        data = self.cleaned_data if self.is_valid() else {}
        return AuditFilters(**{key: data.get(key) or ("" if "date" not in key else None)
                               for key in AuditFilters.__dataclass_fields__})
