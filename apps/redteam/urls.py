from django.urls import path

from apps.redteam import views

app_name = "redteam"

urlpatterns = [
    path("", views.campaign_list, name="campaign_list"),
    path("new/", views.campaign_create, name="campaign_create"),
    path("compare/", views.campaign_compare, name="compare"),
    path("probes/", views.probes, name="probes"),
    path("probes/<int:probe_pk>/delete/", views.probe_delete, name="probe_delete"),
    path("prompts/<int:prompt_pk>/trend/", views.prompt_trend, name="trend"),
    path("<int:pk>/", views.campaign_detail, name="campaign_detail"),
    path("<int:pk>/progress/", views.campaign_progress, name="campaign_progress"),
    path("<int:pk>/cancel/", views.campaign_cancel, name="campaign_cancel"),
    path("<int:pk>/resume/", views.campaign_resume, name="campaign_resume"),
    path("<int:pk>/report/", views.campaign_report, name="report"),
    path("<int:pk>/evidence/", views.campaign_evidence, name="evidence"),
    path("<int:pk>/attacks/<int:attack_pk>/triage/", views.attack_triage, name="attack_triage"),
    path("<int:pk>/attacks/<int:attack_pk>/to-dataset/", views.attack_to_dataset, name="attack_to_dataset"),
]
