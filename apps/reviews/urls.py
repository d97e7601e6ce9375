from django.urls import path

from apps.reviews import views

app_name = "reviews"

urlpatterns = [
    path("", views.use_case_list, name="list"),
    path("new/", views.use_case_create, name="create"),
    path("questions/", views.intake_questions, name="questions"),
    path("questionnaire.json", views.questionnaire_view, name="questionnaire"),
    path("<int:pk>/", views.use_case_detail, name="detail"),
    path("<int:pk>/edit/", views.use_case_edit, name="edit"),
    path("<int:pk>/submit/", views.use_case_submit, name="submit"),
    path("<int:pk>/vote/", views.use_case_vote, name="vote"),
    path("<int:pk>/transition/", views.use_case_transition, name="transition"),
    path("<int:pk>/tier/", views.use_case_tier, name="tier"),
    path("<int:pk>/tier/<int:change_id>/decide/", views.tier_change_decide, name="tier_decide"),
    path("<int:pk>/confirm-rejection/", views.rejection_confirm, name="confirm_rejection"),
    path("<int:pk>/conditions/", views.condition_add, name="condition_add"),
    path("<int:pk>/conditions/<int:condition_id>/check/", views.condition_check, name="condition_check"),
    path("<int:pk>/conditions/<int:condition_id>/evidence/", views.condition_evidence, name="condition_evidence"),
    path("<int:pk>/conditions/<int:condition_id>/evidence/file", views.condition_evidence_file,
         name="condition_evidence_file"),
    path("<int:pk>/conditions/<int:condition_id>/accept/", views.condition_accept, name="condition_accept"),
    path("<int:pk>/controls/waive/", views.control_waive, name="control_waive"),
    path("<int:pk>/comments/", views.comment_add, name="comment"),
    path("<int:pk>/prompts/", views.prompt_link, name="prompt_link"),
    path("<int:pk>/collections/", views.collection_link, name="collection_link"),
    path("<int:pk>/report/", views.use_case_report, name="report"),
    path("<int:pk>/report.md", views.use_case_report, {"fmt": "md"}, name="report_md"),
    path("<int:pk>/report.json", views.use_case_report, {"fmt": "json"}, name="report_json"),
]
