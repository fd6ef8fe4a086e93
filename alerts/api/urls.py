"""API routes of alerts, on-call and incidents, mounted under /api/v1/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import alertmanager, channels, rules_export, views

router = SimpleRouter()
router.register("alerts", views.AlertViewSet, basename="alert")
router.register("schedules", views.ScheduleViewSet, basename="schedule")
router.register("escalation-policies", views.EscalationPolicyViewSet, basename="escalation-policy")
router.register("incidents", views.IncidentViewSet, basename="incident")
router.register(
    "notification-channels", channels.NotificationChannelViewSet, basename="notification-channel"
)

urlpatterns = [
    path("alerts/alertmanager", alertmanager.webhook, name="alertmanager-webhook"),
    path("alerts/prometheus-rules", rules_export.prometheus_rules, name="prometheus-rules"),
    *router.urls,
]
