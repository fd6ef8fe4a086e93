"""tests/query_counts.json holds only what a test still measures: a page or endpoint that is gone
(or renamed) must leave the ratchet with it, not linger as a number nobody checks."""

from __future__ import annotations

from tests.alerts.test_query_counts import ENDPOINTS as ALERT_ENDPOINTS
from tests.deployments_api.test_query_counts import ENDPOINTS as DEPLOYMENT_ENDPOINTS
from tests.frontend.test_query_counts import PAGES as REGISTRY_PAGES
from tests.frontend_alerts.test_query_counts import PAGES as ALERT_PAGES
from tests.frontend_deployments.test_query_counts import PAGES as DEPLOYMENT_PAGES
from tests.frontend_reviews.test_query_counts import PAGES as REVIEW_PAGES
from tests.monitoring_api.test_deployment_health import ENDPOINT as DEPLOYMENT_HEALTH
from tests.monitoring_api.test_monitoring_overview import ENDPOINT as MONITORING_OVERVIEW
from tests.monitoring_pages.test_query_counts import PAGES as MONITORING_PAGES
from tests.registry.test_query_counts import ENDPOINTS
from tests.support.query_counts import recorded_counts


def test_every_recorded_count_is_still_measured():
    measured = (
        set(REGISTRY_PAGES)
        | set(DEPLOYMENT_PAGES)
        | {f"GET {url}" for url in ENDPOINTS}
        | {MONITORING_OVERVIEW, DEPLOYMENT_HEALTH}
        | set(DEPLOYMENT_ENDPOINTS)
        | set(ALERT_ENDPOINTS)
        | set(ALERT_PAGES)
        | set(REVIEW_PAGES)
        | set(MONITORING_PAGES)
    )
    assert set(recorded_counts()) == measured


# The pages that bench/pages.py measures at scale (issue 12): each must be in the ratchet, so
# that its query count stays independent of the data as well as fast.
BENCHED_PAGES = {
    "home",
    "models",
    "deployments",
    "monitoring",
    "model-detail",
    "release-detail",
    "alerts",
    "reviews",
    "audit-log",
}


def test_every_page_measured_at_scale_is_in_the_ratchet():
    missing = BENCHED_PAGES - set(recorded_counts())
    assert not missing, f"record {sorted(missing)} in the ratchet"
