"""The home page, "what needs me": releases awaiting my approval, alerts for me or my on-call
rotation, review items I can take, and releases in flight on my teams' models. A thin view over
the domains' selectors (which hold every rule of who may act); it never decides anything
itself, and its query count stays the same however many items wait."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from alerts import selectors as alert_selectors
from core import clock
from deployments import selectors as deployment_selectors
from deployments.models import ACTIVE_STATES, ReleaseState
from reviews import selectors as review_selectors

from .views import page

# Rows a section shows; "see all" leads to the full, filtered list.
ROWS = 10


@dataclass(frozen=True)
class Section:
    """One box of the home page: how many things wait, the first few, where to see them all."""

    key: str
    title: str
    count: int
    rows: list[Any]
    see_all: str
    empty: str
    extra: dict[str, Any] = field(default_factory=dict)


def _url(name: str, query: list[tuple[str, str]] | None = None) -> str:
    return reverse(name) + (f"?{urlencode(query)}" if query else "")


def _approvals(user: Any) -> Section:
    waiting = deployment_selectors.releases_awaiting_approval(user)
    return Section(
        "approvals",
        "Releases awaiting your approval",
        len(waiting),
        waiting[:ROWS],
        _url("releases", [("state", ReleaseState.AWAITING_APPROVAL)]),
        "Nothing awaits your approval. Releases you can approve appear here; "
        "start one from a deployment page.",
    )


def _alerts(user: Any) -> Section:
    alerts = alert_selectors.alerts_for_me(user)
    return Section(
        "alerts",
        "Alerts for you and your on-call rotation",
        alerts.count(),
        list(alerts[:ROWS]),
        _url("alerts", [("view", "mine")]),
        "No open alert is assigned to you or your rotation. Your teams' alerts are on the "
        "alerts page; the on-call page shows who is on call.",
    )


def _reviews(user: Any) -> Section:
    items = review_selectors.items_open_to(user, now=clock.now())
    counts = review_selectors.open_to_counts(items)
    return Section(
        "reviews",
        "Review items you can take",
        counts["queue"] + counts["appeals"],
        list(items[:ROWS]),
        _url("reviews"),
        "No review item waits for you. Items and appeals you may decide appear here once a "
        "team gives you the reviewer duty.",
        extra={"counts": counts, "appeals_url": _url("reviews", [("view", "appeals")])},
    )


def _in_flight(user: Any) -> Section:
    releases = deployment_selectors.releases_in_flight(user)
    return Section(
        "in-flight",
        "Releases in flight on your teams' models",
        releases.count(),
        list(releases[:ROWS]),
        _url("releases", [("state", s) for s in ReleaseState.values if s in ACTIVE_STATES]),
        "No release is running on your teams' models. Start one from a deployment page.",
    )


@page("GET")
def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    sections = [_approvals(user), _alerts(user), _reviews(user), _in_flight(user)]
    return render(
        request,
        "frontend/home.html",
        {"sections": sections, "waiting": sum(s.count for s in sections[:3])},
    )
