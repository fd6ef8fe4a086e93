"""What an approver compares before deciding: the version a release would replace against the one
it proposes, field by field (artifact, metadata, configuration, input and output schema,
baseline profile, evaluation metrics), each row flagged when it changed. Reads only the rows the
caller loaded (one query at most, for a stable version that moved since the release began); it
never writes and never decides who may approve."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from registry.models import ModelVersion

from .models import Release, ReleaseState

# A section of a version with more leaves than this shows the first ones and says how many more:
# a schema of thousands of features must not make the approval page unbounded.
MAX_ROWS_PER_SECTION = 100
# Deeper than this, a JSON value is shown whole (compact) rather than one row per leaf.
MAX_DEPTH = 6
MAX_VALUE_CHARS = 300
ABSENT = ""
NOTHING = "—"  # a section neither version fills
# Sections whose field names say what they are without the section's name.
PLAIN_SECTIONS = ("Artifact", "Metadata", "Baseline profile")


@dataclass(frozen=True)
class DiffRow:
    """One field of both versions, as text ("" when a version does not have it)."""

    section: str
    field: str
    running: str
    proposed: str

    @property
    def changed(self) -> bool:
        return self.running != self.proposed

    @property
    def name(self) -> str:
        """The field with its section when the field alone is a bare path ("input schema
        properties.age.type")."""
        return (
            self.field if self.section in PLAIN_SECTIONS else f"{self.section.lower()} {self.field}"
        )


@dataclass(frozen=True)
class VersionDiff:
    running: ModelVersion | None
    proposed: ModelVersion
    rows: list[DiffRow]

    @property
    def changed(self) -> list[DiffRow]:
        return [row for row in self.rows if row.changed]

    def sections(self) -> list[tuple[str, list[DiffRow]]]:
        """The rows grouped by section, in order."""
        groups: dict[str, list[DiffRow]] = {}
        for row in self.rows:
            groups.setdefault(row.section, []).append(row)
        return list(groups.items())


def replaced_version(release: Release) -> ModelVersion | None:
    """The version the release's decision is about replacing: while it awaits approval, the
    one the deployment serves now (a rollback may have moved it since the release began);
    afterwards, the one it started from."""
    deployment = release.deployment
    if (
        release.state == ReleaseState.AWAITING_APPROVAL
        and deployment.stable_version_id != release.from_version_id
    ):
        return deployment.stable_version
    return release.from_version


def release_version_diff(release: Release) -> VersionDiff:
    return version_diff(replaced_version(release), release.version)


def version_diff(running: ModelVersion | None, proposed: ModelVersion) -> VersionDiff:
    rows: list[DiffRow] = []
    for section, extract in SECTIONS:
        before = dict(extract(running)) if running is not None else {}
        after = dict(extract(proposed))
        fields = list(dict.fromkeys([*before, *after]))
        section_rows = [
            DiffRow(section, name, before.get(name, ABSENT), after.get(name, ABSENT))
            for name in fields
        ] or [DiffRow(section, "(none)", NOTHING, NOTHING)]
        if len(section_rows) > MAX_ROWS_PER_SECTION:
            # Changed rows first, so a cut never hides a difference an approver must see.
            section_rows.sort(key=lambda row: not row.changed)
            more = len(section_rows) - MAX_ROWS_PER_SECTION
            hidden_changes = sum(row.changed for row in section_rows[MAX_ROWS_PER_SECTION:])
            section_rows = section_rows[:MAX_ROWS_PER_SECTION]
            note = f"{more} more fields ({hidden_changes} changed): see the API or version page"
            section_rows.append(DiffRow(section, "…", note, note))
        rows += section_rows
    return VersionDiff(running, proposed, rows)


# Sections ---------------------------------------------------------------------------------------


def _artifact(version: ModelVersion) -> Iterator[tuple[str, str]]:
    yield "artifact digest", version.artifact_digest
    yield "digest verified", "yes" if version.digest_verified else "no (scheme not readable)"
    yield "artifact URI", version.artifact_uri
    yield "image", version.image or NOTHING


def _metadata(version: ModelVersion) -> Iterator[tuple[str, str]]:
    yield "status", version.get_status_display()
    yield "framework", version.framework or NOTHING
    yield "source commit", version.source_commit or NOTHING
    yield "training data", version.training_data_ref or NOTHING
    yield "tags", ", ".join(str(t) for t in version.tags or []) or NOTHING


def _config(version: ModelVersion) -> Iterator[tuple[str, str]]:
    yield from _leaves(version.config)


def _input_schema(version: ModelVersion) -> Iterator[tuple[str, str]]:
    yield from _leaves(version.input_schema)


def _output_schema(version: ModelVersion) -> Iterator[tuple[str, str]]:
    yield from _leaves(version.output_schema)


def _baseline(version: ModelVersion) -> Iterator[tuple[str, str]]:
    profile = version.baseline_profile if isinstance(version.baseline_profile, dict) else {}
    features = profile.get("features") if isinstance(profile.get("features"), dict) else {}
    if not features and not profile.get("prediction"):
        yield "profile", "none (drift is not checked)"
        return
    for name, spec in sorted(features.items()):
        yield f"feature {name}", distribution_summary(spec)
    if profile.get("prediction"):
        yield "prediction", distribution_summary(profile["prediction"])


def _metrics(version: ModelVersion) -> Iterator[tuple[str, str]]:
    yield from _leaves(version.training_metrics)


SECTIONS = (
    ("Artifact", _artifact),
    ("Metadata", _metadata),
    ("Configuration", _config),
    ("Input schema", _input_schema),
    ("Output schema", _output_schema),
    ("Baseline profile", _baseline),
    ("Evaluation metrics", _metrics),
)


def distribution_summary(spec: Any) -> str:
    """One baseline distribution in words: its kind, bins or categories, values counted and,
    for a numeric one, the range its bins cover."""
    if not isinstance(spec, dict):
        return _text(spec)
    if spec.get("type") == "numeric":
        counts = spec.get("counts") if isinstance(spec.get("counts"), list) else []
        edges = spec.get("bin_edges") if isinstance(spec.get("bin_edges"), list) else []
        total = sum(c for c in counts if isinstance(c, int | float))
        span = f", range {_number(edges[0])} to {_number(edges[-1])}" if edges else ""
        return f"numeric, {len(counts)} bins, {_number(total)} values{span}"
    if spec.get("type") == "categorical":
        freqs = spec.get("frequencies") if isinstance(spec.get("frequencies"), dict) else {}
        total = sum(c for c in freqs.values() if isinstance(c, int | float))
        names = ", ".join(sorted(str(k) for k in freqs)[:8])
        more = f" (+{len(freqs) - 8})" if len(freqs) > 8 else ""
        return f"categorical, {len(freqs)} categories ({names}{more}), {_number(total)} values"
    return _text(spec)


def _leaves(value: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    """Dotted paths to the leaves of a JSON value; lists and deep values shown whole."""
    if isinstance(value, dict) and value and depth < MAX_DEPTH:
        for key in sorted(value, key=str):
            yield from _leaves(value[key], f"{prefix}.{key}" if prefix else str(key), depth + 1)
        return
    if not prefix:
        if value not in (None, {}, [], ""):
            yield "(value)", _text(value)
        return
    yield prefix, _text(value)


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"
