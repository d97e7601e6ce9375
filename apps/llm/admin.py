"""Model aliases and deployments, read-only: changes go through apps/llm/aliases.py, which audits them."""

from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin
from apps.llm.models import Deployment, ModelAlias


class DeploymentInline(admin.TabularInline):
    model = Deployment
    fields = ("model", "weight", "priority", "max_concurrency", "rpm_limit", "is_active")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ModelAlias)
class ModelAliasAdmin(ReadOnlyAdmin):
    list_display = ("name", "kind", "strategy", "deadline_seconds", "max_attempts", "is_active", "updated_at")
    list_filter = ("kind", "strategy", "is_active")
    search_fields = ("name", "description")
    inlines = [DeploymentInline]


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdmin):
    list_display = ("alias", "model", "weight", "priority", "max_concurrency", "rpm_limit", "is_active")
    list_filter = ("is_active", "priority")
    list_select_related = ("alias", "model")
    search_fields = ("alias__name", "model__name")
