"""Monitoring tables. `MetricScrape` is the demo metrics store of the local scrape source: one row
per successful scrape of one model version's `/metrics`. It never holds request payloads, only
the metric samples the service already exports."""

from __future__ import annotations

from django.db import models


class MetricScrapeQuerySet(models.QuerySet["MetricScrape"]):
    def for_versions(self, keys: list[tuple[str, int]]) -> MetricScrapeQuerySet:
        """Scrapes of any of the given (model, version) pairs, in one WHERE clause."""
        condition = models.Q(pk__in=[])
        for model_name, version in keys:
            condition |= models.Q(model_name=model_name, version=version)
        return self.filter(condition)


class MetricScrape(models.Model):
    """The samples of one scrape, compactly: `{sample_name: [[labels, value], ...]}` where labels
    leave out `model` and `version` (they are columns) and `*_created` samples are dropped."""

    model_name = models.CharField(max_length=200)
    version = models.PositiveIntegerField()
    scraped_at = models.DateTimeField()
    target_url = models.CharField(max_length=500)
    samples = models.JSONField(default=dict)

    objects = MetricScrapeQuerySet.as_manager()

    class Meta:
        ordering = ["model_name", "version", "scraped_at"]
        indexes = [
            models.Index(
                fields=["model_name", "version", "scraped_at"], name="metricscrape_key_time"
            ),
            models.Index(fields=["scraped_at"], name="metricscrape_time"),
        ]

    def __str__(self) -> str:
        return f"{self.model_name} v{self.version} @ {self.scraped_at.isoformat()}"
