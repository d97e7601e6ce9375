from django.urls import path

from apps.incidents import views

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
]
