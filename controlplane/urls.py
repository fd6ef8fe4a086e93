from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import health

api_v1 = [
    path("", include("identity.api.urls")),
    path("", include("registry.api.urls")),
    path("", include("deployments.api.urls")),
    path("", include("monitoring.api.urls")),
    path("", include("alerts.api.urls")),
    path("", include("reviews.api.urls")),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", include("monitoring.api.exporter")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("demo/", include("demo.urls")),
    path("", include("frontend.urls")),
]
