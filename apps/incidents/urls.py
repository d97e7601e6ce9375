from django.urls import path

from apps.incidents import followup_views, object_views, views

app_name = "incidents"

urlpatterns = [
    path("", views.incident_list, name="list"),
    path("new/", views.incident_declare, name="declare"),
    path("switched/", views.switched_now, name="switched"),
    path("<int:pk>/", views.incident_detail, name="detail"),
    path("<int:pk>/status/", views.incident_move, name="move"),
    path("<int:pk>/acknowledge/", views.incident_acknowledge, name="acknowledge"),
    path("<int:pk>/notes/", views.note_add, name="note"),
    path("<int:pk>/mitigations/", views.mitigation_apply, name="mitigation_apply"),
    path("<int:pk>/mitigations/<int:mitigation_pk>/undo/", views.mitigation_undo, name="mitigation_undo"),
    # the same switches from the use case / prompt / key / collection pages (apps/incidents/object_views.py)
    path("switches/<str:scope>/<int:pk>/", object_views.object_switches, name="object_switches"),
    path("switches/<str:scope>/<int:pk>/apply/", object_views.object_switch_apply, name="object_switch_apply"),
    path("switches/<str:scope>/<int:pk>/<int:mitigation_pk>/undo/", object_views.object_switch_undo,
         name="object_switch_undo"),

    # after and around the incident: review, runbooks, Art. 73, metrics, detection suggestions (ADR 0084-0087)
    path("metrics/", followup_views.metrics_page, name="metrics"),
    path("suggestions/", followup_views.suggestion_list, name="suggestions"),
    path("suggestions/<int:pk>/open/", followup_views.suggestion_open, name="suggestion_open"),
    path("suggestions/<int:pk>/dismiss/", followup_views.suggestion_dismiss, name="suggestion_dismiss"),
    path("runbooks/", followup_views.runbook_list, name="runbooks"),
    path("runbooks/edit/", followup_views.runbook_edit, name="runbook_edit"),
    path("runbooks/<int:pk>/", followup_views.runbook_detail, name="runbook"),
    path("<int:pk>/review/", followup_views.review_detail, name="review"),
    path("<int:pk>/review/save/", followup_views.review_save, name="review_save"),
    path("<int:pk>/review/causes/", followup_views.root_cause_add, name="root_cause_add"),
    path("<int:pk>/review/causes/<int:cause_pk>/remove/", followup_views.root_cause_remove, name="root_cause_remove"),
    path("<int:pk>/review/actions/", followup_views.action_item_add, name="action_add"),
    path("<int:pk>/review/actions/<int:item_pk>/status/", followup_views.action_item_status, name="action_status"),
    path("<int:pk>/review/sign-off/", followup_views.review_sign_off, name="review_sign_off"),
    path("<int:pk>/art73/", followup_views.art73, name="art73"),
    path("<int:pk>/art73/report.<str:fmt>", followup_views.art73_report, name="art73_report"),
]
