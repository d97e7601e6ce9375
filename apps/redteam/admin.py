from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin
from apps.redteam.models import Campaign, RedTeamPolicy


@admin.register(Campaign)
class CampaignAdmin(ReadOnlyAdmin):
    list_display = ("pk", "name", "team", "target_label", "model", "status", "progress_done", "successes")
    list_filter = ("status",)


@admin.register(RedTeamPolicy)
class RedTeamPolicyAdmin(ReadOnlyAdmin):
    list_display = ("team", "default_max_asr", "min_judge_kappa", "updated_at")
