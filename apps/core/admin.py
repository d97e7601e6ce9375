"""The one read-only admin base: writes go through the portal's pages and services, which record audit events.
(No model is registered here; each app's admin.py registers its own with this base.)"""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
