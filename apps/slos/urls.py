from django.urls import path

from apps.slos import views

app_name = "slos"

urlpatterns = [
    path("", views.slo_overview, name="overview"),
    path("use-cases/<int:use_case_id>/", views.use_case_slos, name="use_case"),
    path("use-cases/<int:use_case_id>/new/", views.slo_create, name="create"),
    path("<int:pk>/edit/", views.slo_edit, name="edit"),
]
