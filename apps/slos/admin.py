from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin
from apps.slos.models import Slo, SloAlert


@admin.register(Slo)
class SloAdmin(ReadOnlyAdmin):
    list_display = ("id", "use_case", "kind", "target_percent", "threshold_ms", "window_days", "health", "is_active")
    list_filter = ("kind", "health", "is_active")


@admin.register(SloAlert)
class SloAlertAdmin(ReadOnlyAdmin):
    list_display = ("id", "slo", "pair", "severity", "opened_at", "resolved_at", "incident")
    list_filter = ("pair", "severity")
