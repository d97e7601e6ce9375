"""Read-only admin pages: prices, budgets and the ledger change through services (audited), not the admin."""

from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin
from apps.costs.models import Budget, BudgetAlert, BudgetPeriod, CostAnomaly, Price, RepricingJob, UsageEvent


@admin.register(Price)
class PriceAdmin(ReadOnlyAdmin):
    list_display = ("model_name", "provider", "input_per_mtok", "output_per_mtok", "cached_input_per_mtok",
                    "valid_from", "valid_to", "source")
    search_fields = ("model_name",)


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = ("occurred_at", "request_id", "team_id", "feature", "tenant", "model", "source", "status", "cost")
    show_full_result_count = False  # no COUNT(*) over tens of millions of rows
    search_fields = ("=request_id",)


@admin.register(Budget)
class BudgetAdmin(ReadOnlyAdmin):
    list_display = ("name", "team", "feature", "tenant", "amount", "period", "hard_cap", "is_active")


@admin.register(BudgetPeriod)
class BudgetPeriodAdmin(ReadOnlyAdmin):
    list_display = ("budget", "period_start", "period_end", "window_start", "spent", "reserved")


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "budget", "kind", "threshold", "spent", "projected")


@admin.register(CostAnomaly)
class CostAnomalyAdmin(ReadOnlyAdmin):
    list_display = ("day", "team", "feature", "spend", "baseline")


@admin.register(RepricingJob)
class RepricingJobAdmin(ReadOnlyAdmin):
    list_display = ("id", "model_name", "start", "end", "status", "progress_done", "progress_total", "events_repriced")
