"""What people concluded about each model version: predictions submitted for review, first-level
decisions, overrides and appeals, and the rates the canary gate (reviews.analysis), the
`/metrics` collector (reviews.metrics) and the monitoring page's "Human review" tiles read.

Counting rules live here once: "decided" is a level-1 decision (an appealed item keeps its
level-1 decision on its Appeal row, so it still counts as decided and, when that decision was an
override, as overridden); the level-2 decision of an appeal is final for the caller but is not
the model's disagreement rate. Every read is one aggregate query whatever the number of items or
versions. It reads only, and never selects an input summary."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q

from core import clock
from deployments.models import Deployment
from deployments.review_policy import policy_of
from monitoring.health import DeploymentHealth
from monitoring.tiles import Tile, TileStatus, no_data
from monitoring.wording import duration_label, percent

from .models import OPEN_REVIEW_STATES, Decision, ReviewItem, ReviewStatus

# A level-1 decision exists: decided at level 1, or appealed (the appeal keeps it).
LEVEL_1_DECIDED = Q(level=1, status=ReviewStatus.DECIDED) | Q(appeal__isnull=False)
LEVEL_1_OVERRIDDEN = Q(level=1, status=ReviewStatus.DECIDED, decision=Decision.OVERRIDE) | Q(
    appeal__appealed_decision=Decision.OVERRIDE
)
APPEALED = Q(appeal__isnull=False)
OPEN = Q(status__in=OPEN_REVIEW_STATES)


def outcome_counts(within: Q | None = None) -> dict[str, Count]:
    """The aggregate of one group of items as Count expressions (submitted, decided, overridden,
    appealed), limited to the items `within` selects (all when None). Shared by every reader so
    that the page, the gate and /metrics never count differently."""

    def count(condition: Q | None) -> Count:
        parts = [q for q in (within, condition) if q is not None]
        if not parts:
            return Count("pk")
        return Count("pk", filter=parts[0] & parts[1] if len(parts) == 2 else parts[0])

    return {
        "submitted": count(None),
        "decided": count(LEVEL_1_DECIDED),
        "overridden": count(LEVEL_1_OVERRIDDEN),
        "appealed": count(APPEALED),
    }


@dataclass(frozen=True)
class VersionOutcomes:
    """The review outcomes of one model version on one deployment.

    `submitted`, `decided`, `overridden` and `appealed` count items created since the `since`
    the caller chose. `predictions` is what the metrics source counted over the page's window
    (None when unknown) and `submitted_in_window` the items created over that same window: the
    review rate compares those two, never counts from different periods."""

    version: int
    submitted: int = 0
    decided: int = 0
    overridden: int = 0
    appealed: int = 0
    predictions: float | None = None
    submitted_in_window: int = 0

    @property
    def override_rate(self) -> float | None:
        """Overridden / decided at level 1; None with nothing decided (never a 0 it does not
        know)."""
        return self.overridden / self.decided if self.decided else None

    @property
    def appeal_rate(self) -> float | None:
        return self.appealed / self.decided if self.decided else None

    @property
    def review_rate(self) -> float | None:
        """Items submitted per prediction over the window; None without a prediction count."""
        if self.predictions is None or self.predictions <= 0:
            return None
        return self.submitted_in_window / self.predictions

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "submitted": self.submitted,
            "decided": self.decided,
            "overridden": self.overridden,
            "appealed": self.appealed,
            "override_rate": self.override_rate,
            "appeal_rate": self.appeal_rate,
            "review_rate": self.review_rate,
        }


def rates(
    deployment: Deployment | int,
    versions: Iterable[int],
    since: datetime | None = None,
    *,
    predictions: Mapping[int, float | None] | None = None,
    predictions_since: datetime | None = None,
) -> dict[int, VersionOutcomes]:
    """The outcomes of each version number in `versions` on `deployment`, counting items created
    at or after `since` (all of them when None); every asked version has an entry, with zero
    counts when it has no item. With `predictions` ({version: count}) the review rate is the
    share of them submitted since `predictions_since` (default: `since`), the start of the window
    the predictions were counted over. One query."""
    numbers = sorted({int(v) for v in versions})
    if not numbers:
        return {}
    window_start = predictions_since if predictions_since is not None else since
    items = ReviewItem.objects.filter(
        deployment_id=getattr(deployment, "pk", deployment), model_version__number__in=numbers
    )
    lower = None if since is None else min(since, window_start or since)
    if lower is not None:
        items = items.filter(created_at__gte=lower)
    within = None if since is None or lower == since else Q(created_at__gte=since)
    in_window = Q(created_at__gte=window_start) if window_start is not None else None
    rows = (
        items.order_by()
        .values("model_version__number")
        .annotate(
            **outcome_counts(within),
            submitted_in_window=(
                Count("pk", filter=in_window) if in_window is not None else Count("pk")
            ),
        )
    )
    found = {row.pop("model_version__number"): row for row in rows}
    counted = predictions or {}
    return {
        number: VersionOutcomes(
            version=number, predictions=counted.get(number), **found.get(number, {})
        )
        for number in numbers
    }


# The monitoring page's "Human review" tiles -----------------------------------------------------


@dataclass(frozen=True)
class VersionReviewTiles:
    """The review tiles of one version the deployment serves, on the track it serves."""

    track: str
    version: int
    outcomes: VersionOutcomes
    tiles: tuple[Tile, ...]


def review_tiles(
    health: DeploymentHealth, window_seconds: float, *, now: datetime | None = None
) -> tuple[VersionReviewTiles, ...]:
    """Review, override and appeal rate tiles per version shown on the deployment's monitoring
    page; () when the deployment's policy reviews nothing and no version has an item (the page
    then shows no review section). One query.

    The review rate is over the page's window, against the requests its request-rate tile
    counted (the tiles carry requests, not rows: a batched request counts once). Override and
    appeal rates are over every item of the version: people decide hours after the prediction,
    so a 15-minute window would hold almost no decision."""
    deployment = health.deployment
    if not health.tracks:
        return ()
    requests: dict[int, float | None] = {}
    for track in health.tracks:
        tile = track.tile("request_rate")
        requests[track.version_number] = (
            tile.value * window_seconds if tile is not None and tile.value is not None else None
        )
    start = (now or clock.now()) - timedelta(seconds=window_seconds)
    found = rates(deployment, list(requests), None, predictions=requests, predictions_since=start)
    enabled = deployment.config is not None and policy_of(deployment.config.review_policy).enabled
    if not enabled and not any(outcome.submitted for outcome in found.values()):
        return ()
    window = duration_label(window_seconds)
    return tuple(
        VersionReviewTiles(
            track=str(track.track),
            version=track.version_number,
            outcomes=found[track.version_number],
            tiles=_tiles_of(found[track.version_number], window),
        )
        for track in health.tracks
    )


def _tiles_of(outcome: VersionOutcomes, window: str) -> tuple[Tile, ...]:
    return (_review_rate_tile(outcome, window), _override_tile(outcome), _appeal_tile(outcome))


def _review_rate_tile(outcome: VersionOutcomes, window: str) -> Tile:
    key, label = "review_rate", "Review rate"
    if outcome.predictions is None:
        return no_data(key, label, "the metrics source gave no request count for the window")
    rate = outcome.review_rate
    if rate is None:
        return no_data(key, label, f"no requests in the last {window}")
    return Tile(
        key,
        label,
        percent(rate),
        TileStatus.INFO,
        rate,
        f"{outcome.submitted_in_window} items sent for review from "
        f"{outcome.predictions:.0f} requests in the last {window}",
    )


def _override_tile(outcome: VersionOutcomes) -> Tile:
    key, label = "override_rate", "Override rate"
    rate = outcome.override_rate
    if rate is None:
        return no_data(key, label, f"no first-level decision yet ({outcome.submitted} items)")
    return Tile(
        key,
        label,
        percent(rate),
        TileStatus.INFO,
        rate,
        f"{outcome.overridden} of {outcome.decided} first-level decisions overrode the model",
    )


def _appeal_tile(outcome: VersionOutcomes) -> Tile:
    key, label = "appeal_rate", "Appeal rate"
    rate = outcome.appeal_rate
    if rate is None:
        return no_data(key, label, "no first-level decision to appeal yet")
    return Tile(
        key,
        label,
        percent(rate),
        TileStatus.INFO,
        rate,
        f"{outcome.appealed} of {outcome.decided} decisions appealed",
    )
