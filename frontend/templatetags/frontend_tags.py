"""Presentation filters for the portal templates: pretty JSON, short digests, audit diffs and
baseline summaries. Pure functions of what the view already loaded: they must never query."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

from django import template

register = template.Library()

_MISSING = object()


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@register.filter
def short_digest(digest: str, length: int = 12) -> str:
    """`sha256:0123456789ab` from a full digest, enough to tell versions apart on a page."""
    algorithm, _, hexdigest = (digest or "").partition(":")
    return f"{algorithm}:{hexdigest[:length]}" if hexdigest else digest


@register.filter
def http_url(url: str) -> str:
    """The URL when it is http(s), else "": stored URLs never become javascript: links."""
    return url if urlparse(url or "").scheme in {"http", "https"} else ""


@register.filter
def audit_diff(event: Any) -> list[dict[str, Any]]:
    """One row per field of an audit event's before/after snapshots, changed ones flagged."""
    before = event.before if isinstance(event.before, dict) else {}
    after = event.after if isinstance(event.after, dict) else {}
    rows = []
    for field in sorted(set(before) | set(after)):
        old, new = before.get(field, _MISSING), after.get(field, _MISSING)
        rows.append(
            {
                "field": field,
                "before": "" if old is _MISSING else _compact(old),
                "after": "" if new is _MISSING else _compact(new),
                "changed": old != new,
            }
        )
    return rows


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


@register.filter
def baseline_summary(profile: Any) -> list[dict[str, Any]]:
    """Per feature of a baseline profile: its kind and its bins count or its categories."""
    features = profile.get("features") if isinstance(profile, dict) else None
    if not isinstance(features, dict):
        return []
    rows = []
    for name, spec in sorted(features.items()):
        spec = spec if isinstance(spec, dict) else {}
        counts = spec.get("counts")
        frequencies = spec.get("frequencies")
        rows.append(
            {
                "name": name,
                "type": spec.get("type", "?"),
                "bins": len(counts) if isinstance(counts, list) else None,
                "categories": sorted(frequencies) if isinstance(frequencies, dict) else [],
            }
        )
    return rows
