"""Read-only admin pages: writes go through the portal's pages and services, which record audit events."""

from django.contrib import admin

from apps.accounts.forms import ThrottledAdminAuthenticationForm
from apps.accounts.models import ApiToken, Membership, Team
from apps.core.admin import ReadOnlyAdmin

admin.site.login_form = ThrottledAdminAuthenticationForm  # /admin/login/ is throttled like the login page


@admin.register(Team)
class TeamAdmin(ReadOnlyAdmin):
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ("team", "user", "role", "created_at")
    list_filter = ("role", "team")
    search_fields = ("user__username", "team__slug")


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ("name", "key_id", "team", "user", "scope", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("scope", "team")
    search_fields = ("name", "key_id", "user__username")
    exclude = ("key_hash",)
