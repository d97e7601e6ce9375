"""Browser routes. Catalog-wide pages live under "-/" (a prompt name never starts with "-"); a prompt's pages
are `<name>/` and `<name>/-/…`, so names keep their slashes: /prompts/support/triage-summary/-/diff/."""

from django.urls import path

from apps.prompts import playground, views

app_name = "prompts"

P = "<promptname:name>/"

urlpatterns = [
    path("", views.prompt_list, name="list"),
    path("-/new/", views.prompt_create, name="create"),
    path("-/requests/", views.request_list, name="requests"),
    path("-/requests/<int:pk>/", views.request_detail, name="request"),
    path("-/requests/<int:pk>/approve/", views.request_approve, name="request_approve"),
    path("-/requests/<int:pk>/reject/", views.request_reject, name="request_reject"),
    path("-/requests/<int:pk>/cancel/", views.request_cancel, name="request_cancel"),
    path("-/requests/<int:pk>/recheck/", views.request_recheck, name="request_recheck"),
    path("-/requests/<int:pk>/expedite/", views.request_expedite, name="request_expedite"),
    path("-/teams/<slug:slug>/", views.team_settings, name="team_settings"),
    path("-/teams/<slug:slug>/policy/", views.policy_update, name="policy_update"),
    path("-/teams/<slug:slug>/webhooks/", views.webhook_create, name="webhook_create"),
    path("-/teams/<slug:slug>/webhooks/<int:pk>/delete/", views.webhook_delete, name="webhook_delete"),
    path("-/teams/<slug:slug>/export/", views.team_export, name="team_export"),
    path("-/teams/<slug:slug>/import/", views.team_import, name="team_import"),
    path("-/runs/<uuid:batch>/stream/<int:index>/", playground.run_stream, name="playground_stream"),
    path(P, views.prompt_detail, name="detail"),
    path(P + "-/edit/", views.prompt_edit, name="edit"),
    path(P + "-/versions/new/", views.version_create, name="version_create"),
    path(P + "-/versions/<int:number>/", views.version_detail, name="version"),
    path(P + "-/versions/<int:number>/render/", views.version_render, name="version_render"),
    path(P + "-/versions/<int:number>/playground/", playground.playground, name="playground"),
    path(P + "-/diff/", views.diff_view, name="diff"),
    path(P + "-/labels/", views.label_set, name="label_set"),
    path(P + "-/promote/", views.promote, name="promote"),
]
