"""The alerts app's Django configuration; it must never run code at import or start-up."""

from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts, on-call and incidents"
