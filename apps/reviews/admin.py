from django.contrib import admin

from apps.reviews.models import Control, QuestionnaireVersion, ReviewPolicy


@admin.register(Control)
class ControlAdmin(admin.ModelAdmin):
    list_display = ("key", "name")
    search_fields = ("key", "name")


@admin.register(ReviewPolicy)
class ReviewPolicyAdmin(admin.ModelAdmin):
    list_display = ("low_months", "elevated_months", "high_months", "notice_days")

    def has_add_permission(self, request):
        return not ReviewPolicy.objects.exists()


@admin.register(QuestionnaireVersion)
class QuestionnaireVersionAdmin(admin.ModelAdmin):
    """Publish a new version: copy the current schema, edit, save with a higher number (validated)."""

    list_display = ("version", "note", "created_by", "created_at")
    readonly_fields = ("created_by", "created_at")

    def save_model(self, request, obj, form, change):
        obj.created_by = obj.created_by or request.user
        super().save_model(request, obj, form, change)
