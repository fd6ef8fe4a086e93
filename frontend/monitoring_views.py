"""Monitoring pages: the overview of every visible deployment (worst first) and one deployment's
tiles per track (and its human-review rates per version), both refreshed in place by HTMX every
10 seconds; the overview names each failing deployment's open alert and its owner. Thin views
over monitoring.selectors (and alerts.selectors, reviews.outcomes); they never query a metrics
source or the database themselves.
"""

from __future__ import annotations

from django import forms
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers, patch_vary_headers

from alerts import selectors as alert_selectors
from monitoring import selectors
from monitoring.health import Health
from reviews import outcomes as review_outcomes

from .views import is_htmx, page

REFRESH_SECONDS = 10
# Cards per page of the overview, worst first: every visible deployment is ranked, but only a
# page of them is rendered (the markup of one card costs more than ranking it).
OVERVIEW_PAGE_SIZE = 25


class WindowForm(forms.Form):
    window = forms.ChoiceField(
        label="Window",
        choices=[(label, f"Last {label}") for label in selectors.WINDOWS],
        required=False,
        initial=selectors.DEFAULT_WINDOW,
    )

    def chosen(self) -> str:
        """The valid choice, or the default (the page then says why with a 400)."""
        if self.is_bound and self.is_valid():
            return self.cleaned_data["window"] or selectors.DEFAULT_WINDOW
        return selectors.DEFAULT_WINDOW


def _window(request: HttpRequest) -> tuple[WindowForm, str, int, int]:
    form = WindowForm(request.GET if "window" in request.GET else None)
    label, seconds = selectors.window_of(form.chosen())
    status = 400 if form.is_bound and not form.is_valid() else 200
    return form, label, seconds, status


def _respond(
    request: HttpRequest, full: str, fragment: str, context: dict, status: int
) -> HttpResponse:
    template = fragment if is_htmx(request) else full
    response = render(request, template, {**context, "refresh": REFRESH_SECONDS}, status=status)
    patch_vary_headers(response, ["HX-Request"])
    add_never_cache_headers(response)
    return response


@page("GET")
def monitoring_overview(request: HttpRequest) -> HttpResponse:
    form, label, seconds, status = _window(request)
    healths = selectors.monitoring_overview(request.user, seconds)
    page_obj = Paginator(healths, OVERVIEW_PAGE_SIZE).get_page(request.GET.get("page"))
    shown = list(page_obj.object_list)
    # Who owns each failing deployment's worst open alert: one query for the page's deployments
    # (asked for every one, so the count does not depend on how many are failing).
    open_alerts = alert_selectors.open_alerts_by_deployment(
        request.user, [h.deployment.pk for h in shown]
    )
    context = {
        "form": form,
        "window": label,
        "healths": shown,
        "page_obj": page_obj,
        "rows": [
            (h, open_alerts.get(h.deployment.pk) if h.health == Health.CRITICAL else None)
            for h in shown
        ],
        "counts": selectors.health_counts(healths),
    }
    return _respond(
        request,
        "frontend/monitoring/overview.html",
        "frontend/monitoring/_overview_live.html",
        context,
        status,
    )


@page("GET")
def deployment_monitoring(request: HttpRequest, pk: int) -> HttpResponse:
    form, label, seconds, status = _window(request)
    health = selectors.deployment_monitoring(request.user, pk, seconds)
    context = {
        "form": form,
        "window": label,
        "health": health,
        "deployment": health.deployment,
        # Review, override and appeal rates per version (one query; none without a policy).
        "reviews": review_outcomes.review_tiles(health, seconds),
    }
    return _respond(
        request,
        "frontend/monitoring/deployment.html",
        "frontend/monitoring/_deployment_live.html",
        context,
        status,
    )
