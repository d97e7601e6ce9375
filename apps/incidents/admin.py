from django import forms
from django.contrib import admin, messages

from apps.core.admin import ReadOnlyAdmin
from apps.incidents import paging
from apps.incidents.models import (
    ActionItem,
    DetectionRule,
    Incident,
    IncidentSuggestion,
    Mitigation,
    PagingDelivery,
    PagingWebhook,
    PostIncidentReview,
    Runbook,
    SeverityDefinition,
)


@admin.register(SeverityDefinition)
class SeverityDefinitionAdmin(admin.ModelAdmin):
    """What Sev1–Sev4 mean here: shown on the declare form and each incident. One row per level."""

    list_display = ("level", "summary")


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdmin):
    list_display = ("id", "title", "severity", "status", "team", "detected_at")
    list_filter = ("status", "severity", "kind")


@admin.register(Mitigation)
class MitigationAdmin(ReadOnlyAdmin):
    list_display = ("id", "incident", "kind", "target_label", "applied_at", "undone_at")


# -- after and around the incident (ADR 0084-0087) ----------------------------------------------------------
class PagingWebhookForm(forms.ModelForm):
    class Meta:
        model = PagingWebhook
        fields = ("severity", "url", "description", "is_active")

    def clean_url(self):
        problem = paging.url_problem(self.cleaned_data["url"])
        if problem:
            raise forms.ValidationError(problem)
        return self.cleaned_data["url"]


@admin.register(PagingWebhook)
class PagingWebhookAdmin(admin.ModelAdmin):
    """Per severity, a signed POST to a paging tool; the signing secret is shown once, when it is created."""

    form = PagingWebhookForm
    list_display = ("severity", "url", "is_active", "created_at")

    def save_model(self, request, obj, form, change):
        secret = paging.paging_webhook_save(webhook=obj, actor=request.user)
        if secret:
            messages.warning(request, f"Signing secret (shown once, keep it in the receiver): {secret}")


@admin.register(DetectionRule)
class DetectionRuleAdmin(admin.ModelAdmin):
    """Thresholds on the portal's signals, evaluated every 5 minutes (docs/incidents.md, "Detection")."""

    list_display = ("name", "signal", "threshold", "window_minutes", "severity", "team", "auto_open", "enabled",
                    "last_evaluated_at")
    list_filter = ("signal", "enabled")


@admin.register(IncidentSuggestion)
class IncidentSuggestionAdmin(ReadOnlyAdmin):
    list_display = ("id", "title", "team", "status", "seen", "last_seen_at")
    list_filter = ("status",)


@admin.register(Runbook)
class RunbookAdmin(ReadOnlyAdmin):
    list_display = ("title", "kind", "use_case", "updated_at")


@admin.register(PostIncidentReview)
class PostIncidentReviewAdmin(ReadOnlyAdmin):
    list_display = ("incident", "regression_escape", "signed_off_at")


@admin.register(ActionItem)
class ActionItemAdmin(ReadOnlyAdmin):
    list_display = ("title", "incident", "owner", "due_date", "status")
    list_filter = ("status",)


@admin.register(PagingDelivery)
class PagingDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("id", "event", "incident", "webhook", "status", "attempts", "response_status", "created_at")
    list_filter = ("status",)
