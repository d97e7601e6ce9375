from django.urls import path

from apps.llm import views

app_name = "llm"

urlpatterns = [
    path("", views.catalog, name="catalog"),
]
