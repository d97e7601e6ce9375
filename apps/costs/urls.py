from django.urls import path

from apps.costs import views

app_name = "costs"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("glance/", views.glance, name="glance"),
    path("charts/<slug:name>/", views.chart, name="chart"),
    path("charts/<slug:name>.csv", views.chart_csv, name="chart_csv"),
    path("budgets/", views.budget_list, name="budget_list"),
    path("budgets/<int:pk>/", views.budget_edit, name="budget_edit"),
    path("budgets/<int:pk>/delete/", views.budget_delete, name="budget_delete"),
    path("prices/", views.price_list, name="price_list"),
    path("prices/<int:pk>/correct/", views.price_correct, name="price_correct"),
    path("prices/import/", views.price_import, name="price_import"),
    path("prices/jobs/<int:pk>/", views.repricing_job, name="repricing_job"),
]
