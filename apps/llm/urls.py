from django.urls import path

from apps.llm import views

app_name = "llm"

urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("providers/new/", views.provider_create, name="provider_create"),
    path("providers/<int:pk>/edit/", views.provider_edit, name="provider_edit"),
    path("providers/<int:pk>/test/", views.provider_test, name="provider_test"),
    path("new/", views.model_create, name="model_create"),
    path("<int:pk>/edit/", views.model_edit, name="model_edit"),
    path("prices/new/", views.price_create, name="price_create"),
]
