"""Presentation filters and tags for the portal templates: pretty JSON, short digests, audit
diffs, baseline summaries, times (`{% when %}`), breadcrumbs and sortable column headers. Pure
functions of what the view already loaded: they must never query."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

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


@register.simple_tag
def when(value: datetime | None) -> SafeString:
    """`<time datetime=ISO class="when" title="… UTC">YYYY-MM-DD HH:MM UTC</time>`, in UTC (the
    server knows no reader's zone); portal.js rewrites it to the reader's zone with a relative
    form. None (or anything not a datetime) is an em dash."""
    if not isinstance(value, datetime):
        return format_html('<span class="when-none">{}</span>', "—")
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return format_html(
        '<time datetime="{}" class="when" title="{}">{}</time>',
        utc.isoformat(timespec="seconds").replace("+00:00", "Z"),
        utc.strftime("%Y-%m-%d %H:%M:%S UTC"),
        utc.strftime("%Y-%m-%d %H:%M UTC"),
    )


def _target(target: Any) -> str:
    """A breadcrumb's link: a path as given, else a URL name without arguments."""
    target = str(target)
    if target.startswith("/"):
        return target
    try:
        return reverse(target)
    except NoReverseMatch:
        return ""


@register.inclusion_tag("frontend/_breadcrumbs.html")
def breadcrumbs(*parts: Any) -> dict[str, Any]:
    """`{% breadcrumbs "Models" "models" model.name %}`: Home, then (label, URL name or path)
    pairs, then the current page's label (linked nowhere)."""
    crumbs = [("Home", reverse("home"))]
    pairs, current = (parts[:-1], parts[-1]) if len(parts) % 2 else (parts, None)
    for label, target in zip(pairs[::2], pairs[1::2], strict=True):
        crumbs.append((str(label), _target(target)))
    return {"crumbs": crumbs, "current": current}


@register.inclusion_tag("frontend/_sort_header.html", takes_context=True)
def sort_header(
    context: dict[str, Any], label: str, key: str, first: str = "asc"
) -> dict[str, Any]:
    """A column header that sorts its table: `key` ascending, `-key` descending, the first
    press in the `first` direction; the other query parameters (filters) are kept, the page
    reset. Its `aria-sort` says how the table is sorted now (from the view's `sort`)."""
    current = context.get("sort", "")
    if current == key:
        direction, next_key = "ascending", f"-{key}"
    elif current == f"-{key}":
        direction, next_key = "descending", key
    else:
        direction, next_key = "none", key if first == "asc" else f"-{key}"
    request = context.get("request")
    query = request.GET.copy() if request is not None else None
    if query is not None:
        query.pop("page", None)
        query["sort"] = next_key
    return {
        "label": label,
        "direction": direction,
        "href": f"?{query.urlencode()}" if query is not None else f"?sort={next_key}",
    }
