"""The monitoring read API the pages call: the windows a page offers, the overview of every visible
deployment worst-first, one deployment's tiles per track, and the health counts. Each
environment's metrics source is asked once per page (monitoring.batching), whatever the number
of deployments. It reads only: it never writes and never decides who may see what (the
deployment list it is given is already restricted)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.utils import timezone

from core.errors import ValidationFailed
from deployments import kpi as kpi_module
from deployments import selectors as deployment_selectors
from deployments.models import Deployment, ReleaseState
from deployments.runtime.base import Track
from deployments.tracks import release_track
from monitoring.batching import SourceBatch, ask_source, overrides_key
from monitoring.health import (
    DeploymentHealth,
    Health,
    TrackHealth,
    deployment_health_of,
    track_health,
)
from monitoring.sources.base import VersionKey
from monitoring.tiles import deployment_tiles, hourly_cost_of, track_tiles
from monitoring.wording import duration_label, slo_window_label

# The windows a page offers, and the default.
WINDOWS: dict[str, int] = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600}
DEFAULT_WINDOW = "1h"
SPARK_POINTS = 30
# A release in these states has nothing running of its own yet.
_NOT_DEPLOYED = frozenset({ReleaseState.AWAITING_APPROVAL, ReleaseState.APPROVED})

# (track, model version, key) of one version a deployment serves.
_Served = tuple[Track, Any, VersionKey]


def window_of(label: str | None) -> tuple[str, int]:
    """A page's window choice as (label, seconds); an unknown label is a 4xx, not a guess."""
    chosen = label or DEFAULT_WINDOW
    if chosen not in WINDOWS:
        raise ValidationFailed(f"must be one of {', '.join(WINDOWS)}", field="window")
    return chosen, WINDOWS[chosen]


# What the health of a deployment never reads, left in the database when the overview ranks
# every visible deployment: the version's schemas, examples and metrics, the config's
# environment, and the model's description (only the baseline profile and number of a version
# are read). Thousands of rows of them otherwise cost more to decode than the health itself.
_NOT_READ_BY_HEALTH = (
    *(
        f"stable_version__{name}"
        for name in (
            "config",
            "input_schema",
            "output_schema",
            "example_requests",
            "training_metrics",
            "tags",
        )
    ),
    "model__description",
    "model__tags",
    "config__env",
    "config__secret_refs",
)


def monitoring_overview(principal: Any, window_seconds: float) -> list[DeploymentHealth]:
    """Every deployment the principal may see, worst first (all of them are ranked; the page
    shows one page of the ranking)."""
    deployments = list(
        deployment_selectors.deployment_list(principal)
        .select_related(None)
        .select_related("model", "environment", "config", "stable_version")
        .defer(*_NOT_READ_BY_HEALTH)
    )
    return sorted(
        deployment_health(deployments, window_seconds, window_seconds / SPARK_POINTS),
        key=lambda health: health.rank,
    )


def deployment_monitoring(
    principal: Any, deployment_id: int | str, window_seconds: float
) -> DeploymentHealth:
    deployment = deployment_selectors.deployment_get(principal, deployment_id)
    (health,) = deployment_health([deployment], window_seconds, window_seconds / SPARK_POINTS)
    return health


def health_counts(healths: Iterable[DeploymentHealth]) -> dict[str, int]:
    """How many deployments are in each health state, for the overview's summary line."""
    counts = {health.value: 0 for health in Health}
    for item in healths:
        counts[item.health.value] += 1
    return counts


def deployment_health(
    deployments: Sequence[Deployment],
    window_seconds: float,
    step_seconds: float,
    *,
    end: float | None = None,
) -> list[DeploymentHealth]:
    """Tiles for every deployment and track, asking each environment's source once (batched)
    for all of its versions. Deployments should come from `deployments.selectors.
    deployment_list` (config, versions, active release and rollbacks already joined), so this
    adds no SQL beyond what the sources themselves run."""
    if not (window_seconds > 0 and step_seconds > 0):
        raise ValueError("window_seconds and step_seconds must be positive")
    end_ts = timezone.now().timestamp() if end is None else float(end)
    served = {deployment.pk: _served_by(deployment) for deployment in deployments}
    groups: dict[tuple[int, str], list[Deployment]] = defaultdict(list)
    for deployment in deployments:
        groups[(deployment.environment_id, overrides_key(deployment))].append(deployment)
    batches: dict[int, SourceBatch] = {}
    for group in groups.values():
        keys = [key for d in group for _, _, key in served[d.pk]]
        kpis = _kpis_of(group, served)
        batch = ask_source(group[0], keys, kpis, window_seconds, step_seconds, end_ts)
        batches.update({d.pk: batch for d in group})
    return [
        _health_of(d, served[d.pk], batches[d.pk], window_seconds, step_seconds, end_ts)
        for d in deployments
    ]


def _served_by(deployment: Deployment) -> list[_Served]:
    """Every version the deployment serves, on the track the engine put it on."""
    model = deployment.model.name
    found: list[_Served] = []
    stable = deployment.stable_version
    if stable is not None:
        found.append((Track.STABLE, stable, VersionKey(model, stable.number)))
    release = deployment_selectors.active_release(deployment)
    if (
        release is not None
        and release.state not in _NOT_DEPLOYED
        and release.version_id != deployment.stable_version_id
    ):
        # The plan's "old" version is the one the release replaces (none for a first release).
        track = release_track(
            release.strategy, replaces_a_version=release.from_version_id is not None
        )
        found.append((track, release.version, VersionKey(model, release.version.number)))
    return found


def _kpi_definition(deployment: Deployment) -> kpi_module.KpiDefinition | str | None:
    """The deployment's KPI, None without one, or why the stored one is unusable."""
    if deployment.config is None:
        return None
    try:
        return kpi_module.kpi_of(deployment.config.metrics_queries)
    except ValidationFailed as exc:
        return f"the stored KPI is invalid: {exc.field}: {exc.reason}"


def _kpis_of(
    group: Sequence[Deployment], served: Mapping[int, list[_Served]]
) -> list[tuple[VersionKey, kpi_module.KpiDefinition]]:
    wanted = []
    for deployment in group:
        definition = _kpi_definition(deployment)
        if isinstance(definition, kpi_module.KpiDefinition):
            wanted += [(key, definition) for _, _, key in served[deployment.pk]]
    return wanted


def _health_of(
    deployment: Deployment,
    served: list[_Served],
    batch: SourceBatch,
    window: float,
    step: float,
    end: float,
) -> DeploymentHealth:
    environment = deployment.environment
    hourly = hourly_cost_of(deployment)
    kpi = _kpi_definition(deployment)
    notes = []
    if batch.unavailable:
        notes.append(batch.unavailable)
    if batch.skipped_burn_windows:
        notes.append(
            f"burn-rate windows {', '.join(batch.skipped_burn_windows)} are longer than the "
            "source keeps data: the rules that need them are not evaluated"
        )
    if isinstance(kpi, str):
        notes.append(kpi)
    elif kpi is not None and environment.metrics_kind != "prometheus":
        notes.append(
            f"business KPI {kpi.name!r} is skipped: it needs a Prometheus source, "
            f"and {environment.name} uses {environment.metrics_kind}"
        )
    kpi_shown = (
        kpi
        if isinstance(kpi, kpi_module.KpiDefinition) and environment.metrics_kind == "prometheus"
        else None
    )
    tracks = []
    for track, version, key in served:
        found = track_tiles(version, key, batch, deployment.config, hourly, kpi_shown, window, step)
        health, reasons = track_health(found.tiles, found.has_traffic_data)
        tracks.append(
            TrackHealth(
                track=track,
                version_number=version.number,
                key=key,
                tiles=found.tiles,
                health=health,
                reasons=reasons,
                drift=found.drift,
                burn_alerts=found.burn_alerts,
            )
        )
    tiles = deployment_tiles(deployment, hourly, len(tracks), end)
    if not tracks:
        notes.append("nothing is deployed")
    health, reasons = deployment_health_of(tracks, tiles)
    return DeploymentHealth(
        deployment=deployment,
        release=deployment_selectors.active_release(deployment),
        tracks=tuple(tracks),
        tiles=tiles,
        health=health,
        reasons=reasons,
        window_label=duration_label(window),
        slo_window_label=slo_window_label(batch.slo_window_seconds, batch.horizon_label),
        notes=tuple(notes),
    )
