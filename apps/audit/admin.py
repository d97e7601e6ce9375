"""Read-only admin pages for the audit log (the database refuses changes anyway)."""

from django.contrib import admin

from apps.audit.models import AuditEvent, ChainVerification
from apps.core.admin import ReadOnlyAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "occurred_at", "actor_label", "action", "object_type", "object_id", "team_id")
    list_filter = ("action",)
    search_fields = ("actor_label", "action", "object_type", "object_id")
    show_full_result_count = False  # no COUNT(*) over the whole log on every page


@admin.register(ChainVerification)
class ChainVerificationAdmin(ReadOnlyAdmin):
    list_display = ("id", "status", "intact", "first_broken_id", "progress_done", "created_at", "finished_at")
