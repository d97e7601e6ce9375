"""One read-only admin base (apps/core/admin.py): every read-only admin page uses it, none copies it."""

from __future__ import annotations

from pathlib import Path

from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin

ROOT = Path(__file__).resolve().parents[2]


def test_the_read_only_base_is_defined_once():
    defined = [p for p in (ROOT / "apps").rglob("admin.py") if "class ReadOnlyAdmin" in p.read_text()]
    assert defined == [ROOT / "apps" / "core" / "admin.py"]


def test_the_ledgers_and_catalog_admin_pages_are_read_only(rf, admin_user):
    request = rf.get("/admin/")
    request.user = admin_user
    read_only = [model_admin for model_admin in admin.site._registry.values() if isinstance(model_admin, ReadOnlyAdmin)]
    apps_using_it = {model_admin.model._meta.app_label for model_admin in read_only}
    assert {"accounts", "audit", "costs", "prompts"} <= apps_using_it
    for model_admin in read_only:
        assert not model_admin.has_add_permission(request)
        assert not model_admin.has_change_permission(request)
        assert not model_admin.has_delete_permission(request)
