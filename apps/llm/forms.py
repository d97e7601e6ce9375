"""Forms parse; services validate. Service ValidationErrors land next to the field they name."""

from __future__ import annotations

from django import forms

from apps.llm.models import Model, ModelKind, Provider, ProviderKind, RoutingStrategy

KEY_HELP = "Write-only: stored encrypted and never shown again. Leave empty to keep the current key."


class ProviderForm(forms.Form):
    name = forms.SlugField(max_length=64, help_text="A short id, e.g. openai-prod. It cannot be changed later.")
    kind = forms.ChoiceField(choices=ProviderKind.choices)
    base_url = forms.URLField(required=False, label="Base URL", assume_scheme="https",
                              help_text="Azure: https://<resource>.openai.azure.com · vLLM/Ollama: http://host:port/v1 · "
                                        "empty for OpenAI")
    api_version = forms.CharField(max_length=32, required=False, label="API version",
                                  help_text="Azure OpenAI only, e.g. 2024-10-21")
    api_key = forms.CharField(required=False, label="API key", strip=True, help_text=KEY_HELP,
                              widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}))
    api_key_env = forms.CharField(max_length=100, required=False, label="…or read the key from env var",
                                  help_text="e.g. OPENAI_API_KEY; set on the server, never stored here")
    timeout_seconds = forms.FloatField(initial=60.0, label="Timeout (s)")
    max_retries = forms.IntegerField(initial=3, min_value=0, max_value=10, label="Max retries",
                                     help_text="On 429, 5xx, timeouts; exponential backoff with jitter")
    is_active = forms.BooleanField(required=False, initial=True, label="Active")


class ProviderEditForm(ProviderForm):
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored key")

    def __init__(self, *args, provider: Provider | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields.pop("name")
        if provider is not None and provider.api_key_encrypted:
            self.fields["api_key"].help_text = "A key is stored (encrypted). " + KEY_HELP


def provider_initial(provider: Provider) -> dict:
    return {field: getattr(provider, field) for field in
            ("kind", "base_url", "api_version", "api_key_env", "timeout_seconds", "max_retries", "is_active")}


class CatalogModelForm(forms.Form):
    provider = forms.ModelChoiceField(queryset=Provider.objects.order_by("name"), empty_label=None)
    name = forms.CharField(max_length=120, help_text="The portal's id for it, used by prompts and on the ledger")
    remote_name = forms.CharField(max_length=200, label="Remote name",
                                  help_text="The model id the API expects; for Azure the deployment name")
    display_name = forms.CharField(max_length=200, required=False)
    kind = forms.ChoiceField(choices=ModelKind.choices)
    context_window = forms.IntegerField(min_value=1, initial=8192)
    max_output_tokens = forms.IntegerField(min_value=1, initial=1024)
    embedding_dimensions = forms.IntegerField(min_value=1, required=False, help_text="Embedding models only")
    price_name = forms.CharField(max_length=200, required=False, label="Priced as",
                                 help_text="Name in the price list if not the remote name (e.g. gpt-4o for a deployment)")
    is_active = forms.BooleanField(required=False, initial=True, label="Active")


class ModelEditForm(CatalogModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for fixed in ("provider", "name", "kind"):
            self.fields.pop(fixed)


class PriceForm(forms.Form):
    model_name = forms.CharField(max_length=200, label="Model (as priced)",
                                 help_text="The model's 'priced as' name, e.g. gpt-4o-mini")
    provider = forms.CharField(max_length=50, required=False,
                               help_text="Empty: for every provider. A provider name: only for that provider")
    input_per_mtok = forms.DecimalField(min_value=0, max_digits=14, decimal_places=6, label="Input $ / 1M tokens")
    output_per_mtok = forms.DecimalField(min_value=0, max_digits=14, decimal_places=6, label="Output $ / 1M tokens")
    cached_input_per_mtok = forms.DecimalField(min_value=0, max_digits=14, decimal_places=6, required=False,
                                               label="Cached input $ / 1M", help_text="Empty: same as input")
    reasoning_per_mtok = forms.DecimalField(min_value=0, max_digits=14, decimal_places=6, required=False,
                                            label="Reasoning $ / 1M", help_text="Empty: same as output")
    valid_from = forms.DateTimeField(required=False, label="Valid from",
                                     widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                     help_text="Empty: now. In the portal's time zone; after the model's latest price")


class AliasForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="What callers send as the model, e.g. chat. It cannot be "
                                                      "changed later.")
    kind = forms.ChoiceField(choices=ModelKind.choices)
    strategy = forms.ChoiceField(choices=RoutingStrategy.choices, initial=RoutingStrategy.WEIGHTED)
    deadline_seconds = forms.FloatField(initial=60.0, label="Deadline (s)",
                                        help_text="The whole call: every attempt, fallback and backoff")
    max_attempts = forms.IntegerField(initial=3, label="Max attempts", help_text="Over all deployments, 1 to 10")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    is_active = forms.BooleanField(required=False, initial=True, label="Active")


class AliasEditForm(AliasForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields.pop("name")
        self.fields.pop("kind")


class DeploymentForm(forms.Form):
    model = forms.ModelChoiceField(queryset=Model.objects.none(), help_text="A catalog model of the alias's kind")
    weight = forms.IntegerField(initial=1, help_text="Share of its tier's traffic, 0 to 1000; 0 drains it")
    priority = forms.IntegerField(initial=0, help_text="0 primary; 1, 2… fallback tiers (up to 9)")
    max_concurrency = forms.IntegerField(required=False, label="Max concurrency",
                                         help_text="Calls in flight at most, across every process; empty: no limit")
    rpm_limit = forms.IntegerField(required=False, label="Requests per minute", help_text="Empty: no limit")
    is_active = forms.BooleanField(required=False, initial=True, label="Active")

    def __init__(self, *args, kind: str | None = None, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            self.fields.pop("model")
        else:
            self.fields["model"].queryset = Model.objects.filter(kind=kind, is_active=True).order_by("name")
