from django.contrib import admin
from django.urls import include, path

from portal import views
from portal.api import api

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics_view, name="metrics"),
    path("accounts/", include("apps.accounts.urls")),
    path("audit/", include("apps.audit.urls")),
    path("models/", include("apps.llm.urls")),
    path("prompts/", include("apps.prompts.urls")),
    path("costs/", include("apps.costs.urls")),
    path("inbox/", include("apps.notifications.urls")),
    path("gateway/", include("apps.gateway.urls")),
    path("evals/", include("apps.evals.urls")),
    path("rag/", include("apps.rag.urls")),
    path("use-cases/", include("apps.reviews.urls")),
    path("incidents/", include("apps.incidents.urls")),
    path("slos/", include("apps.slos.urls")),
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
]

handler400 = "portal.views.error_400"
handler403 = "portal.views.error_403"
handler404 = "portal.views.error_404"
handler500 = "portal.views.error_500"
