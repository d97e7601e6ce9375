from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django import forms
from django.utils import timezone

from apps.costs.models import Budget, BudgetPeriodKind, Source
from apps.costs.selectors import GROUPS, UsageFilters, default_filters

MAX_DAYS = 400


class DashboardFilterForm(forms.Form):
    """The dashboards' filters (GET). Invalid fields are reported next to themselves and not applied."""

    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}),
                          help_text="Inclusive, UTC days")
    team = forms.ChoiceField(label="Team", required=False)
    feature = forms.CharField(label="Feature", required=False, max_length=120,
                              widget=forms.TextInput(attrs={"list": "costs-features", "autocomplete": "off"}))
    tenant = forms.CharField(label="Tenant", required=False, max_length=120,
                             widget=forms.TextInput(attrs={"list": "costs-tenants", "autocomplete": "off"}))
    model = forms.CharField(label="Model", required=False, max_length=200,
                            widget=forms.TextInput(attrs={"list": "costs-models", "autocomplete": "off"}))
    source = forms.ChoiceField(label="Source", required=False,
                               choices=[("", "All sources"), *[(s, s) for s in Source.values]])
    group_by = forms.ChoiceField(label="Stack by", required=False, choices=[(g, g.title()) for g in GROUPS])

    def __init__(self, *args, teams=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.teams = list(teams)
        self.fields["team"].choices = [("", "All my teams"), *[(t.slug, t.name) for t in self.teams]]

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            self.add_error("end", "'To' must be on or after 'From'.")
        elif start and end and (end - start).days >= MAX_DAYS:
            self.add_error("start", f"Show at most {MAX_DAYS} days at a time.")
        if end and end > timezone.now().date() + timedelta(days=1):
            self.add_error("end", "'To' is in the future.")
        return data

    def value(self, name, default=None):
        """A field's cleaned value when valid, else the default (the filter is not applied)."""
        if name in self.errors:
            return default
        return getattr(self, "cleaned_data", {}).get(name) or default

    def filters(self) -> UsageFilters:
        base = default_filters()
        start, end = self.value("start"), self.value("end")
        if "end" in self.errors or "start" in self.errors:
            start = end = None
        start_at = datetime(start.year, start.month, start.day, tzinfo=UTC) if start else None
        end_at = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1) if end else None
        if start_at and not end_at:
            end_at = max(base.end, start_at + timedelta(days=1))
        if end_at and not start_at:
            start_at = end_at - (base.end - base.start)
        slug = self.value("team", "")
        team_ids = tuple(t.pk for t in self.teams if t.slug == slug) if slug else ()
        if slug and not team_ids:
            team_ids = (-1,)  # a team the viewer may not see: show nothing rather than everything
        return UsageFilters(start=start_at or base.start, end=end_at or base.end, team_ids=team_ids,
                            feature=self.value("feature", ""), tenant=self.value("tenant", ""),
                            model=self.value("model", ""), source=self.value("source", ""))

    @property
    def stack_by(self) -> str:
        return self.value("group_by", "team") or "team"

    def error_summary(self) -> list[str]:
        return [f"{self.fields[name].label if name in self.fields else name}: {' '.join(errs)}"
                for name, errs in self.errors.items()]


class WhatIfForm(forms.Form):
    whatif_feature = forms.CharField(label="Feature", required=False, max_length=120,
                                     widget=forms.TextInput(attrs={"list": "costs-features", "autocomplete": "off"}))
    whatif_model = forms.ChoiceField(label="Cheaper model", required=False)

    def __init__(self, *args, models=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["whatif_model"].choices = [("", "Choose a model"), *[(m, m) for m in models]]


class BudgetForm(forms.ModelForm):
    _use_case_message = "The use case must be a use case's id (a positive whole number), or empty for all."
    use_case_id = forms.IntegerField(
        label="Use case id (optional)", required=False, min_value=1, max_value=2**63 - 1,
        error_messages={"invalid": _use_case_message, "min_value": _use_case_message, "max_value": _use_case_message},
        help_text="Only that use case's calls count (the portal's and gateway keys bound to it). Empty: every use case.")
    thresholds = forms.CharField(label="Alert at (% of amount)", initial="50, 80, 100", required=False,
                                 help_text="Comma-separated percentages; each alerts once per period.")

    class Meta:
        model = Budget
        # thresholds is a plain text field above ("50, 80, 100"), parsed by the service, not the ArrayField
        fields = ["name", "team", "feature", "tenant", "use_case_id", "amount", "period", "hard_cap", "is_active"]
        labels = {"amount": "Amount (USD per period)", "hard_cap": "Hard cap (USD, optional)"}

    def __init__(self, *args, teams=None, allow_all_teams=False, **kwargs):
        super().__init__(*args, **kwargs)
        if teams is not None:
            self.fields["team"].queryset = teams
        self.fields["team"].required = not allow_all_teams
        self.fields["team"].empty_label = "All teams" if allow_all_teams else None
        if not allow_all_teams:
            self.fields["team"].help_text = "A team you own."
        self.fields["period"].choices = BudgetPeriodKind.choices
        if self.instance.pk:
            self.initial["thresholds"] = ", ".join(str(t) for t in self.instance.thresholds)

    def clean_thresholds(self):
        return self.cleaned_data.get("thresholds") or ""

    field_order = ["name", "team", "feature", "tenant", "use_case_id", "amount", "period", "thresholds", "hard_cap", "is_active"]


class _PerTokenPricesForm(forms.Form):
    """The four per-million-token prices of a model (input and output required)."""

    input_per_mtok = forms.DecimalField(label="Input $ / 1M tokens", min_value=0, decimal_places=6, max_digits=14)
    output_per_mtok = forms.DecimalField(label="Output $ / 1M tokens", min_value=0, decimal_places=6, max_digits=14)
    cached_input_per_mtok = forms.DecimalField(label="Cached input $ / 1M", min_value=0, decimal_places=6,
                                               max_digits=14, required=False)
    reasoning_per_mtok = forms.DecimalField(label="Reasoning $ / 1M", min_value=0, decimal_places=6, max_digits=14,
                                            required=False)


class PriceForm(_PerTokenPricesForm):
    model_name = forms.CharField(label="Model", max_length=200)
    provider = forms.CharField(label="Provider", max_length=50, required=False,
                               help_text="Empty: any provider. Else the catalog provider name, e.g. azure.")
    valid_from = forms.DateTimeField(label="Valid from (UTC)", required=False,
                                     widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                     help_text="Empty: now. Earlier than now re-prices the events since then.")

    field_order = ["model_name", "provider", "input_per_mtok", "output_per_mtok", "cached_input_per_mtok",
                   "reasoning_per_mtok", "valid_from"]


class PriceCorrectForm(_PerTokenPricesForm):
    reason = forms.CharField(label="Why was it wrong?", max_length=200)


class LiteLLMImportForm(forms.Form):
    file = forms.FileField(label="model_prices_and_context_window.json",
                           help_text="LiteLLM's price list (JSON). Only changed prices are written.")
    only = forms.CharField(label="Only these models", required=False,
                           help_text="Comma-separated; empty imports every chat and embedding model in the file.")
    skip_bad = forms.BooleanField(label="Skip entries with errors", required=False)
