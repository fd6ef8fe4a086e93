"""Django admin for monitoring: a read-only look at `MetricScrape`, the local scrape source's
buffer of samples. Only the scraper writes it (and prunes it by retention); the admin never adds,
changes or deletes a scrape."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from deployments.admin import ReadOnlyAdmin

from .models import MetricScrape


@admin.register(MetricScrape)
class MetricScrapeAdmin(ReadOnlyAdmin):
    list_display = ["model_name", "version", "scraped_at", "target_url"]
    list_filter = ["model_name"]
    search_fields = ["model_name", "target_url"]
    date_hierarchy = "scraped_at"
    ordering = ["-scraped_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[MetricScrape]:
        # A scrape's samples can be large: the list never loads them (a scrape's page does).
        return super().get_queryset(request).defer("samples")
