"""Thin Celery tasks for monitoring. `scrape_local_metrics` is the demo's stand-in for a
Prometheus server: it scrapes every running version of every deployment whose environment uses
the local metrics source. With Prometheus configured it has nothing to do."""

from __future__ import annotations

import logging

from celery import shared_task

from deployments import engine
from deployments.models import Deployment, MetricsKind
from monitoring.sources.local import LocalScrapeSource, ScrapeTarget

log = logging.getLogger(__name__)


@shared_task(name="monitoring.scrape_local_metrics", ignore_result=True)
def scrape_local_metrics() -> int:
    targets = []
    deployments = Deployment.objects.filter(
        environment__metrics_kind=MetricsKind.LOCAL
    ).select_related("environment", "model")
    for deployment in deployments:
        runtime = engine.runtime_of(deployment)
        ref = engine.deployment_ref(deployment)
        for version in runtime.list_versions(ref):
            url = runtime.endpoint(ref, version)
            if url:
                targets.append(ScrapeTarget(deployment.model.name, version, f"{url}/metrics"))
    outcomes = LocalScrapeSource().scrape(targets)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        log.info("local scrape: %d of %d targets failed", len(failed), len(outcomes))
    return len(outcomes) - len(failed)
