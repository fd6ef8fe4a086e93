"""Which runtime track a release's new version runs on in production: the one rule that the
engine's plan and the monitoring pages both read. It must never import the engine, a runtime
implementation or monitoring."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .models import Strategy
from .runtime.base import Track

# A rolling release replaces the stable version in place (no analysis, nothing to compare):
# its new version is the stable track from the first step.
TRACK_OF_STRATEGY: Mapping[str, Track] = MappingProxyType(
    {
        Strategy.CANARY: Track.CANARY,
        Strategy.BLUE_GREEN: Track.PREVIEW,
        Strategy.SHADOW: Track.SHADOW,
        Strategy.ROLLING: Track.STABLE,
    }
)


def release_track(strategy: str, *, replaces_a_version: bool) -> Track:
    """The track of a release's new version in production. A first release (nothing stable to
    replace) goes straight to stable whatever the strategy: there is nothing to compare it with
    or to fall back to."""
    if not replaces_a_version:
        return Track.STABLE
    return TRACK_OF_STRATEGY[Strategy(strategy)]
