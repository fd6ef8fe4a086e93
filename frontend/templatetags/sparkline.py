"""`{% sparkline values label %}`: a tiny inline SVG line drawn on the server, so the monitoring
tiles need no chart library and no JavaScript. Unknown points (None) are gaps in the line,
never drawn as zero. A pure function of the values it is given: it must never query.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

WIDTH = 120
HEIGHT = 28
PAD = 2


def sparkline_svg(values: Sequence[float | None], label: str = "") -> SafeString:
    """An SVG polyline per run of known points, scaled from 0 (or the minimum, when negative) to
    the maximum; "" when fewer than two points are known (nothing to draw a trend from)."""
    known = [v for v in values if v is not None and math.isfinite(v)]
    if len(values) < 2 or len(known) < 2:
        return mark_safe("")
    low, high = min(0.0, min(known)), max(known)
    span = (high - low) or 1.0
    step = (WIDTH - 2 * PAD) / (len(values) - 1)
    runs: list[list[str]] = [[]]
    for index, value in enumerate(values):
        if value is None or not math.isfinite(value):
            if runs[-1]:
                runs.append([])
            continue
        x = PAD + index * step
        y = HEIGHT - PAD - (value - low) / span * (HEIGHT - 2 * PAD)
        runs[-1].append(f"{x:.1f},{y:.1f}")
    shapes = []
    for run in runs:
        if len(run) == 1:
            x, y = run[0].split(",")
            shapes.append(format_html('<circle cx="{}" cy="{}" r="1.5"></circle>', x, y))
        elif run:
            shapes.append(format_html('<polyline points="{}"></polyline>', " ".join(run)))
    description = _describe(label, known, len(values)) if label else ""
    return format_html(
        '<svg class="sparkline" width="{}" height="{}" viewBox="0 0 {} {}" role="img" '
        'aria-label="{}" focusable="false"><title>{}</title>{}</svg>',
        WIDTH,
        HEIGHT,
        WIDTH,
        HEIGHT,
        description,
        description,
        mark_safe("".join(shapes)),  # noqa: S308 (each shape was built with format_html)
    )


def _describe(label: str, known: list[float], total: int) -> str:
    """The line in words, for whoever cannot see it: which way it went, from what to what,
    its low and high, and how many points were known."""
    first, last = known[0], known[-1]
    if math.isclose(first, last, rel_tol=0.05, abs_tol=1e-9):
        way = f"steady at {last:.3g}"
    else:
        way = f"{'rising' if last > first else 'falling'} from {first:.3g} to {last:.3g}"
    return (
        f"{label} trend: {way}; low {min(known):.3g}, high {max(known):.3g} "
        f"({len(known)} of {total} points known)"
    )


@register.simple_tag
def sparkline(values: Sequence[float | None] | None, label: str = "") -> SafeString:
    return sparkline_svg(list(values or ()), label)
