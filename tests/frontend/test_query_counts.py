"""Query counts of every list and detail page stay flat as data grows (1 object vs 50), and
never rise above the numbers recorded in tests/query_counts.json: a ratchet against N+1.
After a change that lowers a count, record it with UPDATE_QUERY_COUNTS=1."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from alerts.models import Alert
from deployments.models import ReleaseState
from identity.audit import Actor
from identity.models import AuditEvent, Membership, Team
from registry import services
from registry.models import Alias, RegisteredModel
from tests.factories import (
    MembershipFactory,
    ModelVersionFactory,
    RegisteredModelFactory,
    UserFactory,
    alert_of,
    deployment_of,
    environments,
    give_duty,
    make_token,
    put_in_state,
    queued_item_of,
    release_of,
    review_deployment_of,
)
from tests.support.query_counts import (
    LARGE,
    SMALL,
    check_ratchet,
    count_queries,
)


def grow_models(ctx: dict[str, Any], n: int) -> str:
    for i in range(RegisteredModel.objects.filter(team=ctx["team"]).count(), n):
        model = RegisteredModelFactory(name=f"model-{i:03d}", team=ctx["team"], tags=["t"])
        ModelVersionFactory(model=model, number=1)
    return "/models/"


def scorer_of(ctx: dict[str, Any]) -> RegisteredModel:
    if "model" not in ctx:
        ctx["model"] = RegisteredModelFactory(name="scorer", team=ctx["team"])
    return ctx["model"]


def grow_model_detail(ctx: dict[str, Any], n: int) -> str:
    model = scorer_of(ctx)
    actor = Actor.from_principal(ctx["people"]["owner"])
    for number in range(model.versions.count() + 1, n + 1):
        ModelVersionFactory(model=model, number=number, created_by=ctx["people"]["maintainer"])
        services.alias_set(actor=actor, model=model, name=f"alias-{number}", version_number=number)
    return f"/models/{model.name}/"


def grow_version_detail(ctx: dict[str, Any], n: int) -> str:
    model = scorer_of(ctx)
    if not model.versions.exists():
        ModelVersionFactory(model=model, number=1)
    version = model.versions.get(number=1)
    actor = Actor.from_principal(ctx["people"]["owner"])
    for i in range(Alias.objects.filter(version=version).count(), n):
        services.alias_set(actor=actor, model=model, name=f"alias-{i}", version_number=1)
    return f"/models/{model.name}/versions/1/"


def grow_teams(ctx: dict[str, Any], n: int) -> str:
    viewer = ctx["people"]["viewer"]
    for i in range(Membership.objects.filter(user=viewer).count(), n):
        MembershipFactory(team=Team.objects.create(slug=f"team-{i:03d}", name=f"T{i}"), user=viewer)
    return "/teams/"


def grow_team_detail(ctx: dict[str, Any], n: int) -> str:
    team = ctx["team"]
    for i in range(team.memberships.count(), n + 3):  # 3 people already in the team
        MembershipFactory(team=team, user=UserFactory(username=f"member-{i:03d}"), role="viewer")
    for i in range(team.tokens.count(), n):
        make_token(team, ["read"], name=f"ci-{i:03d}", expires_in=timedelta(days=7))
    return f"/teams/{team.slug}/"


def grow_audit_log(ctx: dict[str, Any], n: int) -> str:
    existing = AuditEvent.objects.count()
    AuditEvent.objects.bulk_create(
        AuditEvent(
            actor_type="user",
            actor_label="owner",
            action="model.update",
            target_type="registry.registeredmodel",
            target_id=str(i),
            target_label=f"model-{i}",
            team_id=ctx["team"].pk,
            before={"risk_tier": "low"},
            after={"risk_tier": "high"},
            request_id=f"req-{i}",
            occurred_at=timezone.now(),
        )
        for i in range(existing, n)
    )
    return "/audit/"


def _home_base(ctx: dict[str, Any]) -> dict[str, Any]:
    """The viewer approves, is on call and reviews in `team`; production (whose releases wait
    for an approval) and qa to release in."""
    if "home" not in ctx:
        viewer = ctx["people"]["viewer"]
        give_duty(viewer, ctx["team"], is_approver=True, is_on_call=True, is_reviewer=True)
        _, production = environments()  # production asks for an approval
        reviewed = review_deployment_of(ctx["team"], environment="qa")
        ctx["home"] = {"production": production, "qa": reviewed.environment, "reviewed": reviewed}
    return ctx["home"]


def grow_home(ctx: dict[str, Any], n: int) -> str:
    """What needs the viewer grows: releases awaiting their approval, alerts of their on-call
    team (some assigned to them), review items and appeals they may take, releases in flight."""
    home = _home_base(ctx)
    viewer, maintainer = ctx["people"]["viewer"], ctx["people"]["maintainer"]
    for i in range(Alert.objects.count(), n):
        model = RegisteredModelFactory(name=f"home-{i:03d}", team=ctx["team"])
        v1, v2 = (ModelVersionFactory(model=model, number=n) for n in (1, 2))
        release_of(deployment_of(model, home["production"], stable=v1), v2, maintainer)
        flying = release_of(deployment_of(model, home["qa"]), v1, maintainer)
        put_in_state(flying, ReleaseState.PROGRESSING)
        alert_of(ctx["team"], deployment=flying.deployment, assignee=viewer if i % 2 else None)
        item = queued_item_of(home["reviewed"])
        if i % 2:
            item.level, item.first_decided_by = 2, maintainer
            item.save()
    return "/"


PAGES: dict[str, Callable[[dict[str, Any], int], str]] = {
    "models": grow_models,
    "model-detail": grow_model_detail,
    "version-detail": grow_version_detail,
    "teams": grow_teams,
    "team-detail": grow_team_detail,
    "audit-log": grow_audit_log,
    "home": grow_home,
}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_page_query_count_is_flat_and_within_the_ratchet(page, browser_for, team, people):
    ctx: dict[str, Any] = {"team": team, "people": people}
    client = browser_for("viewer")
    small = count_queries(client, PAGES[page](ctx, SMALL))
    large = count_queries(client, PAGES[page](ctx, LARGE))
    check_ratchet(page, small, large)
