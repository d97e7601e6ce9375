"""Forms of the gateway pages. Values are checked again by the services (apply_service_errors)."""

from django import forms

from apps.costs.selectors import call_status_choices
from apps.gateway.models import EventContent, Injection, InputPii, OutputScan

_LIMIT = {"required": False, "min_value": 1}


class LimitFields(forms.Form):
    allowed_aliases = forms.CharField(label="Allowed models / aliases", required=False, max_length=2000,
                                      help_text="Comma-separated; empty: every model the team may use.")
    requests_per_minute = forms.IntegerField(label="Requests / minute", **_LIMIT)
    requests_per_day = forms.IntegerField(label="Requests / day", **_LIMIT)
    tokens_per_minute = forms.IntegerField(label="Tokens / minute", **_LIMIT)
    tokens_per_day = forms.IntegerField(label="Tokens / day", **_LIMIT)
    dollars_per_day = forms.DecimalField(label="Dollars / day", required=False, min_value=0.01, decimal_places=2,
                                         max_digits=12, help_text="Held before each call: a call that could "
                                                                  "pass it is refused (UTC day).")
    expires_at = forms.DateTimeField(label="Expires", required=False,
                                     widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                     help_text="Empty: never.")
    cache_enabled = forms.BooleanField(label="Response cache (opt-in)", required=False,
                                       help_text="Repeated identical requests are answered from the cache.")
    cache_ttl_seconds = forms.IntegerField(label="Cache TTL (seconds)", required=False, min_value=1,
                                           max_value=604_800, help_text="Empty: the gateway's default.")
    cache_sampled = forms.BooleanField(label="Cache sampled requests too", required=False,
                                       help_text="Requests with temperature above 0 (or unset) are not cached "
                                                 "unless this is on.")
    store_bodies = forms.BooleanField(label="Store request bodies (opt-in)", required=False,
                                      help_text="PII-redacted, kept for the retention period; shown in the request log.")
    body_sample_percent = forms.IntegerField(label="Bodies sampled (%)", required=False, min_value=0, max_value=100,
                                             initial=100, help_text="With stored bodies: the share of requests kept.")

    def clean_body_sample_percent(self):
        value = self.cleaned_data.get("body_sample_percent")
        return 100 if value is None else value


class GatewayKeyForm(LimitFields):
    name = forms.CharField(label="Name", max_length=100, help_text="Where the key is used, e.g. support-bot-prod.")
    feature = forms.CharField(label="Feature", max_length=120, help_text="Its traffic's cost is attributed here.")
    use_case_id = forms.IntegerField(label="Use case id", required=False, min_value=1,
                                     help_text="Bind the key to a use case: refused (423) while it is not active.")

    field_order = ["name", "feature", "use_case_id"]


class KeyEditForm(LimitFields):
    name = forms.CharField(label="Name", max_length=100)

    field_order = ["name"]


class GuardrailsForm(forms.Form):
    guard_input_pii = forms.ChoiceField(label="PII and secrets in the input", choices=InputPii.choices,
                                        help_text="Redact: the model gets placeholders such as [EMAIL].")
    guard_injection = forms.ChoiceField(label="Prompt-injection heuristics", choices=Injection.choices,
                                        help_text="On user and tool messages; a heuristic, not a filter.")
    guard_output = forms.ChoiceField(label="PII and secrets in the answer", choices=OutputScan.choices,
                                     help_text="Streams are held back a few characters so nothing slips through.")
    guard_event_content = forms.ChoiceField(label="A safety event keeps", choices=EventContent.choices)


class RotateForm(forms.Form):
    overlap_hours = forms.IntegerField(label="Old key keeps working for (hours)", min_value=0, max_value=720,
                                       initial=24)


class RequestLogFilterForm(forms.Form):
    key = forms.ChoiceField(label="Key", required=False)
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "any"), *call_status_choices()])
    alias = forms.CharField(label="Model / alias", required=False, max_length=200)
    day = forms.DateField(label="Day (UTC)", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, keys=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["key"].choices = [("", "any"), *((str(k.pk), f"{k.name} ({k.prefix})") for k in keys)]
