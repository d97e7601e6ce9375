from django.urls import path

from apps.scorecards import views

app_name = "scorecards"

urlpatterns = [
    path("", views.portfolio, name="portfolio"),
    path("use-cases/<int:pk>/", views.use_case_scorecard, name="use_case"),
    path("use-cases/<int:pk>/targets/", views.target_set, name="target_set"),
    path("use-cases/<int:pk>/target-users/", views.target_users_set, name="target_users_set"),
    path("use-cases/<int:pk>/refresh/", views.refresh, name="refresh"),
]
