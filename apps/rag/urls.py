from django.urls import path

from apps.rag import views

app_name = "rag"

urlpatterns = [
    path("", views.collection_list, name="list"),
    path("new/", views.collection_create, name="create"),
    path("<int:pk>/", views.collection_detail, name="collection"),
    path("<int:pk>/progress/", views.collection_progress, name="progress"),
    path("<int:pk>/settings/", views.collection_settings, name="settings"),
    path("<int:pk>/delete/", views.collection_delete, name="delete"),
    path("<int:pk>/share/", views.collection_share, name="share"),
    path("<int:pk>/reindex/", views.collection_reindex, name="reindex"),
    path("<int:pk>/upload/", views.document_upload, name="upload"),
    path("<int:pk>/import/", views.corpus_import, name="import"),
    path("<int:pk>/documents/<int:doc>/", views.document_detail, name="document"),
    path("<int:pk>/documents/<int:doc>/retry/", views.document_retry, name="document_retry"),
    path("<int:pk>/documents/<int:doc>/delete/", views.document_delete, name="document_delete"),
    path("<int:pk>/playground/", views.playground, name="playground"),
    path("<int:pk>/answer/", views.answer, name="answer"),
    path("<int:pk>/evals/", views.evals, name="evals"),
    path("<int:pk>/evals/datasets/", views.dataset_import, name="dataset_import"),
    path("<int:pk>/evals/runs/", views.eval_run_create, name="eval_run_create"),
    path("<int:pk>/evals/runs/<int:run>/", views.eval_run_detail, name="eval_run"),
    path("<int:pk>/evals/runs/<int:run>/csv/", views.eval_run_csv, name="eval_run_csv"),
    path("<int:pk>/evals/compare/", views.eval_compare, name="eval_compare"),
]
