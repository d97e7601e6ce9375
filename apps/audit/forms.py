from django import forms

from apps.audit.selectors import AuditFilters


class AuditFilterForm(forms.Form):
    """The audit log's filters. An invalid field is reported next to itself and left out of the filter."""

    actor = forms.CharField(required=False, max_length=200, help_text="Username or token key",
                            widget=forms.TextInput(attrs={"type": "search", "data-search": ""}))
    team = forms.ChoiceField(required=False, choices=[("", "All teams")],
                             error_messages={"invalid_choice": "You see no team with the slug %(value)s."})
    action = forms.CharField(required=False, max_length=80, help_text="Prefix, e.g. team.member")
    object_type = forms.CharField(required=False, max_length=100, help_text="e.g. accounts.team",
                                  widget=forms.TextInput(attrs={"list": "audit-object-types"}))
    object_id = forms.CharField(required=False, max_length=64, label="Object id")
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, teams=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [("", "All teams"), *((t.slug, t.name) for t in teams)]
        for name in ("actor", "action", "object_type", "object_id"):
            self.fields[name].widget.attrs.setdefault("autocomplete", "off")

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "The end date is before the start date.")
        return data

    def filters(self) -> AuditFilters:
        """The valid part of the filters (call after is_valid())."""
        data = getattr(self, "cleaned_data", {})
        return AuditFilters(
            actor=data.get("actor") or "", team=data.get("team") or "", action=data.get("action") or "",
            object_type=data.get("object_type") or "", object_id=data.get("object_id") or "",
            date_from=data.get("date_from"), date_to=data.get("date_to"),
        )

    def error_summary(self) -> list[str]:
        return [f"{self.fields[name].label or name.replace('_', ' ').capitalize()}: {message}"
                for name, messages in self.errors.items() if name in self.fields for message in messages]
