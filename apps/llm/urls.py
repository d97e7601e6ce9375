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
    path("aliases/", views.aliases, name="aliases"),
    path("aliases/new/", views.alias_create, name="alias_create"),
    path("aliases/<int:pk>/edit/", views.alias_edit, name="alias_edit"),
    path("aliases/<int:pk>/deployments/new/", views.deployment_create, name="deployment_create"),
    path("deployments/<int:pk>/edit/", views.deployment_edit, name="deployment_edit"),
]
