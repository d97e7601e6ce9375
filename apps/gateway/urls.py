from django.urls import path

from apps.gateway import views

app_name = "gateway"

urlpatterns = [
    path("", views.keys, name="keys"),
    path("teams/<slug:slug>/keys/new/", views.key_create, name="key_create"),
    path("keys/<int:pk>/", views.key_detail, name="key_detail"),
    path("keys/<int:pk>/guardrails/", views.key_guardrails, name="key_guardrails"),
    path("keys/<int:pk>/rotate/", views.key_rotate, name="key_rotate"),
    path("keys/<int:pk>/revoke/", views.key_revoke, name="key_revoke"),
    path("requests/", views.request_log, name="requests"),
    path("requests/<str:request_id>/", views.request_detail, name="request_detail"),
]
