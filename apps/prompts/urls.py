from django.urls import path

from apps.prompts import views

app_name = "prompts"

urlpatterns = [
    path("", views.prompt_list, name="list"),
]
