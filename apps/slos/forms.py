"""The SLO form: plain fields; the service checks them (apps/slos/services.py) and its messages land next to the
field (apps.core.forms.service_errors_on)."""

from django import forms

from apps.gateway.sli import LATENCY_THRESHOLDS_MS
from apps.slos.models import Kind

SEVERITIES = [(1, "Sev1"), (2, "Sev2"), (3, "Sev3"), (4, "Sev4")]


class SloForm(forms.Form):
    kind = forms.ChoiceField(label="Objective", choices=Kind.choices)
    target_percent = forms.CharField(label="Target (%)", max_length=12, initial="99.5",
                                     help_text="The share of good events over the window, e.g. 99.5.")
    threshold_ms = forms.TypedChoiceField(
        label="Latency threshold", required=False, coerce=int, empty_value=None,
        choices=[("", "— (availability)")] + [(ms, f"{ms / 1000:g} s") for ms in LATENCY_THRESHOLDS_MS],
        help_text="Latency SLOs only: answered calls faster than this are good (time to first token for streams).")
    window_days = forms.IntegerField(label="Window (days)", initial=28, min_value=1, max_value=90,
                                     help_text="Rolling window of the budget: 28 days is the usual one.")
    open_incident = forms.BooleanField(label="Open an incident on a fast burn", required=False,
                                       help_text="Declares an incident for the team when the 1 h / 5 min pair pages.")
    incident_severity = forms.TypedChoiceField(label="Incident severity", choices=SEVERITIES, coerce=int, initial=2)
    is_active = forms.BooleanField(label="Active", required=False, initial=True,
                                   help_text="An inactive SLO is not evaluated and its alerts resolve.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["window_days"].error_messages.update(
            invalid="A whole number of days from 1 to 90.", min_value="A whole number of days from 1 to 90.",
            max_value="A whole number of days from 1 to 90.")
