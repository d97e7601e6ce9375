from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin
from apps.incidents.models import Incident, Mitigation, SeverityDefinition


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
