"""The health of a deployment and of each track it serves, judged from their tiles, and the
worst-first order of the overview. It must never ask a metrics source or compute a tile."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from deployments.models import Deployment, Release
from deployments.runtime.base import Track
from monitoring.drift import DriftReport
from monitoring.slo import BurnAlert
from monitoring.sources.base import VersionKey
from monitoring.tiles import Tile, TileStatus


class Health(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    HEALTHY = "healthy"
    NO_DATA = "no_data"

    @property
    def rank(self) -> int:
        """Sort key of the overview: failing first, then warnings, healthy, no data."""
        return _HEALTH_RANK[self]

    @property
    def label(self) -> str:
        return _HEALTH_LABEL[self]


_HEALTH_RANK = {Health.CRITICAL: 0, Health.WARNING: 1, Health.HEALTHY: 2, Health.NO_DATA: 3}
_HEALTH_LABEL = {
    Health.CRITICAL: "Failing",
    Health.WARNING: "Warning",
    Health.HEALTHY: "Healthy",
    Health.NO_DATA: "No data",
}
# The few tiles the overview shows per track.
SUMMARY_TILES = ("request_rate", "error_rate", "latency_p95", "drift", "error_budget", "burn")


@dataclass(frozen=True)
class TrackHealth:
    """What one version serving one track of a deployment did over the window."""

    track: Track  # the engine's: deployments.tracks
    version_number: int
    key: VersionKey
    tiles: tuple[Tile, ...]
    health: Health
    reasons: tuple[str, ...]
    drift: DriftReport | None = None
    burn_alerts: tuple[BurnAlert, ...] = ()

    def tile(self, key: str) -> Tile | None:
        return next((tile for tile in self.tiles if tile.key == key), None)

    @property
    def summary_tiles(self) -> tuple[Tile, ...]:
        return tuple(tile for key in SUMMARY_TILES if (tile := self.tile(key)) is not None)


@dataclass(frozen=True)
class DeploymentHealth:
    deployment: Deployment
    release: Release | None
    tracks: tuple[TrackHealth, ...]
    tiles: tuple[Tile, ...]  # deployment-wide: cost per hour, monthly budget, rollback
    health: Health
    reasons: tuple[str, ...]
    window_label: str
    slo_window_label: str
    notes: tuple[str, ...] = ()

    @property
    def rank(self) -> tuple[int, str, str]:
        return (self.health.rank, self.deployment.environment.name, self.deployment.name)


def track_health(tiles: Sequence[Tile], has_traffic_data: bool) -> tuple[Health, tuple[str, ...]]:
    """A track is failing with any failing tile, warning with any warning one, without data
    when the source did not answer its traffic numbers, healthy otherwise."""
    failing = [t for t in tiles if t.status == TileStatus.FAIL]
    warning = [t for t in tiles if t.status == TileStatus.WARN]
    reasons = tuple(f"{t.label} {t.text}" for t in (*failing, *warning))
    if failing:
        return Health.CRITICAL, reasons
    if warning:
        return Health.WARNING, reasons
    if not has_traffic_data:
        return Health.NO_DATA, reasons
    return Health.HEALTHY, reasons


def deployment_health_of(
    tracks: Sequence[TrackHealth], tiles: Sequence[Tile]
) -> tuple[Health, tuple[str, ...]]:
    """The worst of the tracks and of the deployment-wide tiles; no data without either."""
    reasons = [f"{t.track} v{t.version_number}: {r}" for t in tracks for r in t.reasons]
    reasons += [f"{tile.label}: {tile.text}" for tile in tiles if tile.status == TileStatus.FAIL]
    reasons += [f"{tile.label}: {tile.text}" for tile in tiles if tile.status == TileStatus.WARN]
    statuses = [t.health for t in tracks]
    if any(tile.status == TileStatus.FAIL for tile in tiles):
        statuses.append(Health.CRITICAL)
    elif any(tile.status == TileStatus.WARN for tile in tiles):
        statuses.append(Health.WARNING)
    if not statuses:
        return Health.NO_DATA, tuple(reasons)
    return min(statuses, key=lambda h: h.rank), tuple(reasons)
