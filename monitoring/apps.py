"""The monitoring app's Django configuration; it must never run code at import or start-up."""

from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring and analysis"
