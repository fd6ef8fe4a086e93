"""Review outcomes per model version (reviews.outcomes.rates): what counts as decided, overridden
and appealed, the period counted, the review rate against a prediction count, and one query
whatever the number of items or versions."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core import clock
from deployments.models import Deployment, Environment
from registry.models import ModelVersion
from reviews.models import Appeal, Decision, ReviewItem, ReviewStatus
from reviews.outcomes import rates
from tests.factories import (
    ModelVersionFactory,
    RegisteredModelFactory,
    deployment_of,
    environment_of,
)

pytestmark = pytest.mark.django_db

POLICY = {"all": True, "min_decided_for_gate": 5, "max_override_rate_increase": 0.05}
_refs = itertools.count(1)


def reviewed_deployment(
    team: Any, *, name: str = "loans", policy: dict[str, Any] | None = None
) -> Deployment:
    """A production deployment of a fresh model with v1 stable and v2 registered, whose config
    holds `policy` (an enabled review policy by default)."""
    environment = Environment.objects.filter(name="production").first() or environment_of(
        "production"
    )
    model = RegisteredModelFactory(name=name, team=team)
    v1 = ModelVersionFactory(model=model, number=1)
    ModelVersionFactory(model=model, number=2)
    return deployment_of(
        model, environment, stable=v1, review_policy=POLICY if policy is None else policy
    )


def review_item(
    deployment: Deployment,
    version: int,
    *,
    decision: str | None = None,
    appealed: bool = False,
    created_at: datetime | None = None,
    sla_deadline: datetime | None = None,
    track: str = "stable",
) -> ReviewItem:
    """One review item of `version` as the services leave it: pending; decided at level 1 with
    `decision`; or, `appealed`, back to pending at level 2 with the level-1 decision on its
    Appeal row."""
    n = next(_refs)
    now = clock.now()
    fields: dict[str, Any] = {}
    if decision is not None and not appealed:
        fields = {
            "status": ReviewStatus.DECIDED,
            "decision": decision,
            "final_output": {"label": "x"},
            "decided_at": now,
        }
    item = ReviewItem.objects.create(
        ref=f"rv_outcomes_{n:012d}",
        team_id=deployment.model.team_id,
        deployment=deployment,
        model_version=ModelVersion.objects.get(model_id=deployment.model_id, number=version),
        config_revision=deployment.config.revision,
        track=track,
        request_id=f"req-{n}",
        mode="held",
        reason="high_risk",
        prediction={"label": "declined"},
        confidence=0.9,
        input_summary={"amount": 100},
        level=2 if appealed else 1,
        sla_deadline=sla_deadline or now + timedelta(hours=4),
        created_at=created_at or now,
        **fields,
    )
    if appealed:
        Appeal.objects.create(
            item=item,
            statement="I disagree",
            submitted_by_label="token:ci",
            appealed_decision=decision or Decision.CONFIRM,
        )
    return item


def items(deployment: Deployment, version: int, count: int, **options: Any) -> None:
    for _ in range(count):
        review_item(deployment, version, **options)


def test_it_counts_level_1_decisions_overrides_and_appeals(team):
    deployment = reviewed_deployment(team)
    items(deployment, 1, 3, decision=Decision.CONFIRM)
    items(deployment, 1, 1, decision=Decision.OVERRIDE)
    items(deployment, 1, 1)  # pending: submitted, not decided
    # Appealed after an override: still a level-1 decision, and an override, and an appeal.
    review_item(deployment, 1, decision=Decision.OVERRIDE, appealed=True)

    found = rates(deployment, [1, 2])

    v1 = found[1]
    assert (v1.submitted, v1.decided, v1.overridden, v1.appealed) == (6, 5, 2, 1)
    assert v1.override_rate == pytest.approx(0.4)
    assert v1.appeal_rate == pytest.approx(0.2)
    assert v1.review_rate is None  # no prediction count given


def test_a_version_without_items_has_zero_counts_and_no_rates(team):
    deployment = reviewed_deployment(team)
    items(deployment, 1, 2)  # pending only

    found = rates(deployment, [1, 2])

    assert found[2].as_dict() == {
        "version": 2,
        "submitted": 0,
        "decided": 0,
        "overridden": 0,
        "appealed": 0,
        "override_rate": None,
        "appeal_rate": None,
        "review_rate": None,
    }
    assert found[1].decided == 0 and found[1].override_rate is None


def test_an_appeal_decided_at_level_2_keeps_the_level_1_decision(team):
    deployment = reviewed_deployment(team)
    item = review_item(deployment, 1, decision=Decision.CONFIRM, appealed=True)
    # The second reviewer overrode: final for the caller, but the model's level-1 review stood.
    ReviewItem.objects.filter(pk=item.pk).update(
        status=ReviewStatus.DECIDED, decision=Decision.OVERRIDE
    )

    v1 = rates(deployment, [1])[1]

    assert (v1.decided, v1.overridden, v1.appealed) == (1, 0, 1)


def test_it_counts_only_items_created_since(team):
    deployment = reviewed_deployment(team)
    start = clock.now()
    items(deployment, 1, 4, decision=Decision.OVERRIDE, created_at=start - timedelta(hours=2))
    items(deployment, 1, 2, decision=Decision.CONFIRM, created_at=start + timedelta(minutes=1))

    v1 = rates(deployment, [1], since=start)[1]

    assert (v1.submitted, v1.decided, v1.overridden) == (2, 2, 0)
    assert v1.override_rate == 0


def test_it_ignores_other_deployments(team):
    deployment = reviewed_deployment(team)
    other = reviewed_deployment(team, name="cards")
    items(other, 1, 3, decision=Decision.OVERRIDE)

    assert rates(deployment, [1])[1].submitted == 0
    assert rates(other.pk, [1])[1].overridden == 3


def test_the_review_rate_compares_the_window_s_items_with_its_predictions(team):
    deployment = reviewed_deployment(team)
    window_start = clock.now() - timedelta(hours=1)
    items(deployment, 1, 5, decision=Decision.CONFIRM, created_at=window_start - timedelta(days=1))
    items(deployment, 1, 3, created_at=window_start + timedelta(minutes=5))

    found = rates(
        deployment, [1, 2], None, predictions={1: 60.0, 2: None}, predictions_since=window_start
    )

    # Decisions over every item; the review rate over the window the 60 predictions came from.
    assert (found[1].submitted, found[1].decided, found[1].submitted_in_window) == (8, 5, 3)
    assert found[1].review_rate == pytest.approx(3 / 60)
    assert found[2].review_rate is None
    assert rates(deployment, [1], predictions={1: 0.0})[1].review_rate is None


def test_it_takes_one_query_whatever_the_number_of_items_and_versions(team):
    deployment = reviewed_deployment(team)
    for number in range(3, 11):
        ModelVersionFactory(model=deployment.model, number=number)
    review_item(deployment, 1, decision=Decision.OVERRIDE)

    def measured() -> int:
        with CaptureQueriesContext(connection) as queries:
            rates(deployment, range(1, 11), since=clock.now() - timedelta(days=1))
        return len(queries)

    with_one = measured()
    for number in range(1, 11):
        items(deployment, number, 5, decision=Decision.CONFIRM)
        review_item(deployment, number, decision=Decision.OVERRIDE, appealed=True)
    assert measured() == with_one == 1
    assert rates(deployment, range(1, 11))[10].decided == 6


def test_no_version_asked_is_no_query(team):
    deployment = reviewed_deployment(team)
    with CaptureQueriesContext(connection) as queries:
        assert rates(deployment, []) == {}
    assert len(queries) == 0
