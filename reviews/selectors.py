"""Reading review items for the reviewers' API and pages: the queue, one item, its history, and
the policy an item was selected under. Every read goes through `visible_to` (identity's one
door) first, so an item of another team is "not found" before any permission check could tell
that it exists. Writes never happen here (claims, decisions, sla and retention write).

Which items a person may take is one rule with two forms kept side by side here: `takeable`
(SQL, for the queue and `claims.claim_next`) and `take_refusal` (one loaded row, for `claim` and
`decide`). Change both or neither."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import BooleanField, Case, Count, Q, QuerySet, Value, When

from core import clock
from core.errors import Conflict, DomainError, Forbidden, NotFound
from deployments.models import Deployment, DeploymentConfig
from deployments.review_policy import ReviewPolicy, policy_of
from identity.models import Team, visible_team_ids
from identity.permissions import Action, can, require

from .models import ReviewEvent, ReviewItem, ReviewItemQuerySet, ReviewStatus

# The longest reference the table holds: anything longer cannot name an item.
MAX_REF_LENGTH = 64
APPEAL_TO_ANOTHER = "an appeal goes to a different reviewer than the one who decided"


# Who may review where --------------------------------------------------------------------------


def _allowed_team_ids(principal: Any, action: Action) -> set[int] | None:
    """The teams where `principal` may take `action` on review items (None: every team, for
    superusers and the system), asked of each team it belongs to through `permissions.can`, so
    that the duty and the human-only rule stay in identity. No query: the memberships are
    loaded once per principal, and an unsaved Team carries the id `can` reads."""
    visible = visible_team_ids(principal)
    if visible is None:
        return None
    return {team_id for team_id in visible if can(principal, action, Team(pk=team_id))}


def reviewer_team_ids(principal: Any, action: Action) -> set[int] | None:
    """As `_allowed_team_ids`, but nowhere at all is a refusal with its reason (a CI token is
    told that a person decides), not an empty queue that would look as if nothing waits."""
    allowed = _allowed_team_ids(principal, action)
    if allowed is not None and not allowed:
        require(principal, action, Team(pk=min(visible_team_ids(principal) or {0})))
    return allowed


# The one rule of who may take an item ---------------------------------------------------------


def takeable(user_pk: int | None, now: datetime) -> Q:
    """Open items this person may take now: pending, or claimed under a lease that has run out
    or that they hold themselves; never a level-2 item whose first decision was theirs."""
    held_by_another = Q(status=ReviewStatus.CLAIMED, claim_expires_at__gt=now) & ~Q(
        claimed_by_id=user_pk
    )
    own_appeal = Q(level=2, first_decided_by_id=user_pk)
    return (
        Q(status__in=[ReviewStatus.PENDING, ReviewStatus.CLAIMED])
        & ~held_by_another
        & ~(own_appeal)
    )


def take_refusal(item: ReviewItem, user: Any, now: datetime) -> DomainError | None:
    """Why `user` may not take this (loaded, preferably locked) item now, as the error to
    raise, or None. The row form of `takeable`."""
    if item.status == ReviewStatus.DECIDED:
        return Conflict("the item is decided: nothing is left to claim", field="status")
    if item.level == 2 and user is not None and item.first_decided_by_id == user.pk:
        return Forbidden(APPEAL_TO_ANOTHER)
    holder = item.claim_holder(now)
    if holder is not None and (user is None or holder.pk != user.pk):
        return Conflict(
            f"{holder.get_username()} holds the item until "
            f"{item.claim_expires_at:%Y-%m-%d %H:%M:%S %Z}",
            field="claimed_by",
        )
    return None


# The queue -------------------------------------------------------------------------------------


def _with_relations(items: ReviewItemQuerySet) -> ReviewItemQuerySet:
    """What a queue row or an item page shows, joined once: a page costs the same number of
    queries with one row or fifty."""
    return items.select_related(
        "team",
        "deployment__environment",
        "deployment__model",
        "model_version",
        "claimed_by",
    )


def queue_for(
    principal: Any,
    *,
    deployment: Deployment | None = None,
    level: int | None = None,
    now: datetime | None = None,
) -> ReviewItemQuerySet:
    """Open items of the teams where the principal reviews, earliest SLA deadline first, each
    marked `may_take` (not held by someone else, not an appeal of the principal's own
    decision, and in a team where the principal may decide). A deployment narrows it (its
    visibility is the caller's to check: `deployments.selectors.deployment_get`)."""
    now = now or clock.now()
    if deployment is not None:
        require(principal, Action.REVIEW_VIEW, deployment)
    view_teams = reviewer_team_ids(principal, Action.REVIEW_VIEW)
    items = ReviewItem.objects.visible_to(principal).open()
    if view_teams is not None:
        items = items.filter(team_id__in=view_teams)
    if deployment is not None:
        items = items.filter(deployment=deployment)
    if level is not None:
        items = items.filter(level=level)
    may_take = takeable(getattr(principal, "pk", None), now)
    decide_teams = _allowed_team_ids(principal, Action.REVIEW_DECIDE)
    if decide_teams is not None:
        may_take &= Q(team_id__in=decide_teams)
    return (
        _with_relations(items)
        .annotate(
            may_take=Case(
                When(may_take, then=Value(True)), default=Value(False), output_field=BooleanField()
            )
        )
        .order_by("sla_deadline", "id")
    )


def claimed_by(items: ReviewItemQuerySet, user: Any) -> ReviewItemQuerySet:
    """Open items whose claim is the user's (a lapsed lease included: still theirs to decide or
    release until someone else takes it)."""
    return items.filter(status=ReviewStatus.CLAIMED, claimed_by_id=getattr(user, "pk", None))


def recently_decided(
    principal: Any, *, since: datetime, deployment: Deployment | None = None
) -> ReviewItemQuerySet:
    """Items decided since `since` in the teams where the principal reviews, newest first."""
    if deployment is not None:
        require(principal, Action.REVIEW_VIEW, deployment)
    teams = reviewer_team_ids(principal, Action.REVIEW_VIEW)
    items = ReviewItem.objects.visible_to(principal).filter(
        status=ReviewStatus.DECIDED, decided_at__gte=since
    )
    if teams is not None:
        items = items.filter(team_id__in=teams)
    if deployment is not None:
        items = items.filter(deployment=deployment)
    return _with_relations(items).select_related("decided_by").order_by("-decided_at", "-id")


# One item --------------------------------------------------------------------------------------


def item_for(principal: Any, ref: str, action: Action) -> ReviewItem:
    """The item named `ref`, if the principal may see it (else "not found", whatever exists)
    and may take `action` on it (else a refusal saying why). Loaded with what its page shows,
    its appeal included."""
    if not isinstance(ref, str) or not 0 < len(ref) <= MAX_REF_LENGTH:
        raise NotFound(f"no review item {ref!r}", field="ref")
    item = (
        _with_relations(ReviewItem.objects.visible_to(principal))
        .select_related("appeal", "decided_by", "first_decided_by")
        .filter(ref=ref)
        .first()
    )
    if item is None:
        raise NotFound(f"no review item {ref!r}", field="ref")
    require(principal, action, item)
    return item


def history_of(item: ReviewItem) -> QuerySet[ReviewEvent]:
    """Who did what to the item, oldest first (never the input summary: events do not hold it)."""
    return ReviewEvent.objects.filter(item=item).order_by("created_at", "id")


def policy_for(item: ReviewItem) -> ReviewPolicy:
    """The policy of the config revision that selected the item (policies are versioned, and
    an item keeps the terms it was submitted under); the deployment's current one when the
    revision is unknown or gone."""
    raw: Any = None
    if item.config_revision is not None:
        raw = (
            DeploymentConfig.objects.filter(
                deployment_id=item.deployment_id, revision=item.config_revision
            )
            .values_list("review_policy", flat=True)
            .first()
        )
    if raw is None:
        raw = (
            Deployment.objects.filter(pk=item.deployment_id)
            .values_list("config__review_policy", flat=True)
            .first()
        )
    return policy_of(raw or {})


# The home page ---------------------------------------------------------------------------------


def items_open_to(principal: Any, *, now: datetime | None = None) -> ReviewItemQuerySet:
    """The open items the principal may take now, earliest SLA deadline first: first reviews
    (level 1) and appeals waiting for a second reviewer (level 2, never one the principal
    decided first), by the queue's own rule (`queue_for`'s `may_take`). Nothing, rather than a
    refusal, for someone who reviews nowhere: the home page shows every person what waits."""
    try:
        items = queue_for(principal, now=now)
    except Forbidden:
        return ReviewItem.objects.none()
    return items.filter(may_take=True)


def open_to_counts(items: ReviewItemQuerySet) -> dict[str, int]:
    """How many of `items` (from `items_open_to`) are first reviews and appeals, in one query."""
    return items.order_by().aggregate(
        queue=Count("pk", filter=Q(level=1)), appeals=Count("pk", filter=Q(level__gte=2))
    )
