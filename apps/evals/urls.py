from django.urls import path

from apps.evals.views import dashboards, datasets, evaluators, gates, home, runs

app_name = "evals"

urlpatterns = [
    path("", home.eval_home, name="list"),
    path("datasets/", datasets.dataset_list, name="dataset_list"),
    path("datasets/new/", datasets.dataset_create, name="dataset_create"),
    path("datasets/seed-adversarial/", datasets.seed_adversarial, name="seed_adversarial"),
    path("datasets/<int:pk>/", datasets.dataset_detail, name="dataset_detail"),
    path("datasets/<int:pk>/import/", datasets.dataset_import, name="dataset_import"),
    path("datasets/<int:pk>/export.<str:fmt>", datasets.dataset_export, name="dataset_export"),
    path("datasets/<int:pk>/items/new/", datasets.dataset_item_add, name="dataset_item_add"),
    path("datasets/<int:pk>/items/<path:key>/", datasets.dataset_item_edit, name="dataset_item_edit"),
    path("evaluators/", evaluators.evaluator_list, name="evaluator_list"),
    path("evaluators/new/", evaluators.evaluator_create, name="evaluator_create"),
    path("evaluators/<int:pk>/", evaluators.evaluator_detail, name="evaluator_detail"),
    path("evaluators/<int:pk>/labels/", evaluators.judge_label_add, name="judge_label_add"),
    path("evaluators/<int:pk>/calibrate/", evaluators.judge_calibrate, name="judge_calibrate"),
    path("runs/", runs.run_list, name="run_list"),
    path("runs/new/", runs.run_create, name="run_create"),
    path("runs/<int:pk>/", runs.run_detail, name="run_detail"),
    path("runs/<int:pk>/progress/", runs.run_progress, name="run_progress"),
    path("runs/<int:pk>/cancel/", runs.run_cancel, name="run_cancel"),
    path("runs/<int:pk>/results.csv", runs.run_results_csv, name="run_results_csv"),
    path("runs/<int:pk>/results/<int:result_id>/", runs.result_detail, name="result_detail"),
    path("compare/", runs.compare, name="compare"),
    path("gates/", gates.gate_list, name="gate_list"),
    path("gates/<promptname:name>/-/run/", gates.gate_run, name="gate_run"),
    path("gates/<promptname:name>/", gates.gate_detail, name="gate_detail"),
    path("dashboards/", dashboards.dashboards, name="dashboards"),
    path("feedback/", dashboards.feedback_list, name="feedback_list"),
    path("from-playground/<int:run_id>/", datasets.from_playground, name="from_playground"),
    path("from-gateway/<str:request_id>/", datasets.from_gateway, name="from_gateway"),
]
