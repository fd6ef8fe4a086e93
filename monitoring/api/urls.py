"""API routes of deployment health, mounted under /api/v1/."""

from django.urls import path

from . import views

urlpatterns = [
    path("monitoring/", views.MonitoringOverviewView.as_view(), name="monitoring-overview-api"),
    path(
        "deployments/<int:pk>/health/",
        views.DeploymentMonitoringView.as_view(),
        name="deployment-health-api",
    ),
]
