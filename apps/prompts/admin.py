"""Read-only admin pages: writes go through the portal's pages and services, which keep history and audit."""

from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin
from apps.prompts.models import (
    GateCheckResult,
    Label,
    LabelEvent,
    PlaygroundRun,
    PromotionRequest,
    Prompt,
    PromptPolicy,
    PromptVersion,
    Webhook,
    WebhookDelivery,
)


@admin.register(Prompt)
class PromptAdmin(ReadOnlyAdmin):
    list_display = ("name", "team", "kind", "latest_version_number", "updated_at")
    list_filter = ("kind", "team")
    search_fields = ("name", "description")
    exclude = ("search_vector",)


@admin.register(PromptVersion)
class PromptVersionAdmin(ReadOnlyAdmin):
    list_display = ("prompt", "number", "author_label", "created_at", "content_hash")
    search_fields = ("prompt__name", "commit_message")
    list_select_related = ("prompt",)


@admin.register(Label)
class LabelAdmin(ReadOnlyAdmin):
    list_display = ("prompt", "name", "version", "updated_at", "updated_by_label")
    list_filter = ("name",)
    list_select_related = ("prompt", "version")


@admin.register(LabelEvent)
class LabelEventAdmin(ReadOnlyAdmin):
    list_display = ("prompt", "label", "from_version", "to_version", "actor_label", "occurred_at")
    list_filter = ("label",)
    list_select_related = ("prompt", "from_version", "to_version")


@admin.register(PromotionRequest)
class PromotionRequestAdmin(ReadOnlyAdmin):
    list_display = ("pk", "prompt", "label", "kind", "status", "requester_label", "created_at")
    list_filter = ("status", "kind")
    list_select_related = ("prompt", "to_version")


@admin.register(GateCheckResult)
class GateCheckResultAdmin(ReadOnlyAdmin):
    list_display = ("request", "run", "key", "status", "blocking", "checked_at")
    list_filter = ("key", "status")


@admin.register(PromptPolicy)
class PromptPolicyAdmin(ReadOnlyAdmin):
    list_display = ("team", "approvals_required", "not_configured_blocks", "lint_warnings_block")


@admin.register(Webhook)
class WebhookAdmin(ReadOnlyAdmin):
    list_display = ("team", "url", "events", "is_active", "created_at")
    exclude = ("secret_encrypted",)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("webhook", "event", "status", "attempts", "response_status", "created_at")
    list_filter = ("status", "event")


@admin.register(PlaygroundRun)
class PlaygroundRunAdmin(ReadOnlyAdmin):
    list_display = ("version", "model", "status", "input_tokens", "output_tokens", "cost", "created_at")
    list_filter = ("status", "model")
