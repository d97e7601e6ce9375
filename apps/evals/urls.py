from django.urls import path

from apps.evals import views

app_name = "evals"

urlpatterns = [
    path("", views.eval_home, name="list"),
    path("datasets/", views.dataset_list, name="dataset_list"),
    path("datasets/new/", views.dataset_create, name="dataset_create"),
    path("datasets/seed-adversarial/", views.seed_adversarial, name="seed_adversarial"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset_detail"),
    path("datasets/<int:pk>/import/", views.dataset_import, name="dataset_import"),
    path("datasets/<int:pk>/export.<str:fmt>", views.dataset_export, name="dataset_export"),
    path("datasets/<int:pk>/items/new/", views.dataset_item_add, name="dataset_item_add"),
    path("datasets/<int:pk>/items/<path:key>/", views.dataset_item_edit, name="dataset_item_edit"),
    path("evaluators/", views.evaluator_list, name="evaluator_list"),
    path("evaluators/new/", views.evaluator_create, name="evaluator_create"),
    path("evaluators/<int:pk>/", views.evaluator_detail, name="evaluator_detail"),
    path("evaluators/<int:pk>/labels/", views.judge_label_add, name="judge_label_add"),
    path("evaluators/<int:pk>/calibrate/", views.judge_calibrate, name="judge_calibrate"),
    path("runs/", views.run_list, name="run_list"),
    path("runs/new/", views.run_create, name="run_create"),
    path("runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("runs/<int:pk>/progress/", views.run_progress, name="run_progress"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="run_cancel"),
    path("runs/<int:pk>/results.csv", views.run_results_csv, name="run_results_csv"),
    path("runs/<int:pk>/results/<int:result_id>/", views.result_detail, name="result_detail"),
    path("compare/", views.compare, name="compare"),
    path("gates/", views.gate_list, name="gate_list"),
    path("gates/<promptname:name>/-/run/", views.gate_run, name="gate_run"),
    path("gates/<promptname:name>/", views.gate_detail, name="gate_detail"),
    path("dashboards/", views.dashboards, name="dashboards"),
    path("feedback/", views.feedback_list, name="feedback_list"),
    path("from-playground/<int:run_id>/", views.from_playground, name="from_playground"),
]
