"""Portal pages for deployments, releases and rollbacks: thin views that read through
deployments.selectors, write through deployments.services (always via `run_action`) and render
templates. They never hold a query, a permission rule or a state rule of their own; `can()` and
`selectors.release_actions()` are only asked which buttons to show."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers

from alerts import selectors as alert_selectors
from deployments import selectors, services
from deployments.evidence_series import release_charts
from deployments.filtersets import ReleaseFilterSet
from deployments.models import Deployment, Release
from deployments.release_stages import release_stages
from deployments.version_diff import release_version_diff
from identity.permissions import Action, can

from .deployment_forms import (
    ReleaseDecisionForm,
    ReleaseOperationForm,
    RollbackForm,
    StartReleaseForm,
)
from .views import _paginate, is_htmx, list_sort, page, run_action

VERSIONS_OFFERED = 50
# Deployments per page of the overview: an installation has thousands, and every row costs
# its objects and its markup, so the page is bounded (grouped per environment within it).
OVERVIEW_PAGE_SIZE = 50

# The sorts of the releases list (validated by `list_sort`), newest first by default.
RELEASE_SORTS: dict[str, tuple[str, ...]] = {
    "started": ("created_at", "id"),
    "-started": ("-created_at", "-id"),
    "deployment": ("deployment__name", "-created_at", "-id"),
    "-deployment": ("-deployment__name", "-created_at", "-id"),
    "environment": ("deployment__environment__name", "-created_at", "-id"),
    "-environment": ("-deployment__environment__name", "-created_at", "-id"),
    "state": ("state", "-created_at", "-id"),
    "-state": ("-state", "-created_at", "-id"),
}

RELEASE_SERVICES: dict[str, tuple[Any, str, str]] = {
    # verb: (service, keyword of the note (the form's field), message on success)
    "approve": (services.release_decide, "comment", "You approved release #{pk}."),
    "reject": (services.release_decide, "comment", "You rejected release #{pk}."),
    "promote": (services.release_promote, "reason", "Release #{pk} moves to its next step."),
    "pause": (services.release_pause, "reason", "Release #{pk} paused."),
    "resume": (services.release_resume, "reason", "Release #{pk} resumed."),
    "abort": (services.release_abort, "reason", "Release #{pk} is being aborted."),
}


# Deployments ----------------------------------------------------------------------------------


@page("GET")
def deployment_overview(request: HttpRequest) -> HttpResponse:
    page_obj = _paginate(
        request, selectors.deployment_overview_ids(request.user), OVERVIEW_PAGE_SIZE
    )
    deployments = selectors.deployments_in_order(request.user, page_obj.object_list)
    return render(
        request,
        "frontend/deployments/overview.html",
        {"groups": selectors.deployment_tiles(deployments), "page_obj": page_obj},
    )


def _deployment_live_context(request: HttpRequest, deployment: Deployment) -> dict[str, Any]:
    """The live part of the deployment page: what serves now, the active release, the newest
    rollback and the rollback button (whose target moves once a rollback is done)."""
    allowed = can(request.user, Action.DEPLOYMENT_ROLLBACK, deployment)
    return {
        "deployment": deployment,
        "live": selectors.deployment_live(deployment),
        "can_rollback": allowed,
        "rollback_target": selectors.rollback_target(deployment) if allowed else None,
    }


def _deployment_live(request: HttpRequest, deployment: Deployment) -> HttpResponse:
    response = render(
        request,
        "frontend/deployments/_live.html",
        _deployment_live_context(request, deployment),
    )
    patch_vary_headers(response, ["HX-Request"])
    return response


def _deployment_page(
    request: HttpRequest,
    deployment: Deployment,
    *,
    start_form: StartReleaseForm | None = None,
    status: int = 200,
) -> HttpResponse:
    serving = deployment.stable_version.number if deployment.stable_version else None
    start_form = start_form or StartReleaseForm()
    start_form.offer(selectors.deployment_versions(deployment)[:VERSIONS_OFFERED], serving)
    config = deployment.config
    context = {
        **_deployment_live_context(request, deployment),
        "config": config,
        "config_settings": selectors.config_settings(config) if config else [],
        "strategy_settings": selectors.strategy_settings(deployment.effective_strategy_params),
        "releases": list(selectors.deployment_releases(deployment)[: selectors.RECENT_RELEASES]),
        "rollbacks": list(selectors.deployment_rollbacks(deployment)[: selectors.RECENT_ROLLBACKS]),
        "can_start_release": can(request.user, Action.RELEASE_CREATE, deployment),
        "start_form": start_form,
    }
    response = render(request, "frontend/deployments/detail.html", context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


@page("GET")
def deployment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The deployment page; an HTMX poll gets only its live part, which stops polling once no
    release or rollback is under way."""
    deployment = selectors.deployment_get(request.user, pk)
    if is_htmx(request):
        return _deployment_live(request, deployment)
    return _deployment_page(request, deployment)


@page("GET")
def deployment_configs(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = selectors.deployment_get(request.user, pk)
    return render(
        request,
        "frontend/deployments/configs.html",
        {
            "deployment": deployment,
            "configs": [
                (config, selectors.config_settings(config))
                for config in selectors.deployment_configs(deployment)
            ],
        },
    )


@page("GET", "POST")
def deployment_rollback(request: HttpRequest, pk: int) -> HttpResponse:
    """The confirmation step of the rollback button (GET), naming the version it returns to,
    with the deployment's runbook (rollback notes) and its open alerts; and the rollback
    itself (POST). Posted by HTMX, the answer is the deployment's live part, which replaces the
    confirmation and polls until the traffic is back; posted plainly, it redirects to the
    deployment page."""
    deployment = selectors.deployment_get(request.user, pk)
    form = RollbackForm(request.POST if request.method == "POST" else None)
    status = 200
    if form.is_bound:
        if form.is_valid():
            outcome = run_action(
                request,
                services.deployment_rollback,
                form=form,
                deployment=deployment,
                reason=form.cleaned_data["reason"],
            )
            if outcome.ok:
                rollback = outcome.value
                messages.success(
                    request,
                    f"Rolling back {deployment.name} in {deployment.environment.name} "
                    f"to v{rollback.to_version.number}.",
                )
                if not is_htmx(request):
                    return redirect("deployment-detail", pk=deployment.pk)
                # Read again: the page shows the rollback that was just written.
                deployment = selectors.deployment_get(request.user, pk)
                context = _deployment_live_context(request, deployment)
                response = render(
                    request, "frontend/deployments/_live.html", {**context, "oob_messages": True}
                )
                response["HX-Push-Url"] = reverse("deployment-detail", args=[deployment.pk])
                return response
            status = outcome.status
        else:
            status = 400
    context = {
        "deployment": deployment,
        "target": selectors.rollback_target(deployment),
        "can_rollback": can(request.user, Action.DEPLOYMENT_ROLLBACK, deployment),
        "form": form,
        "open_alerts": list(alert_selectors.deployment_open_alerts(request.user, deployment)),
    }
    if form.is_bound and is_htmx(request):
        # A refused in-place rollback: only the confirmation again, with the error on it.
        context["oob_messages"] = True
        template = "frontend/deployments/_rollback_form.html"
    else:
        template = "frontend/deployments/rollback_confirm.html"
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


@page("POST")
def release_start(request: HttpRequest, pk: int) -> HttpResponse:
    """The "Start a release" form of the deployment page."""
    deployment = selectors.deployment_get(request.user, pk)
    form = StartReleaseForm(request.POST)
    if not form.is_valid():
        return _deployment_page(request, deployment, start_form=form, status=400)
    outcome = run_action(
        request, _release_create, form=form, deployment=deployment, **form.cleaned_data
    )
    if outcome.ok:
        return redirect("release-detail", pk=outcome.value.pk)
    return _deployment_page(request, deployment, start_form=form, status=outcome.status)


def _release_create(*, actor: Any, deployment: Deployment, version: int) -> Release:
    # Looked up inside run_action, so an unknown version number is a message, not a 404 page.
    found = selectors.deployment_version(deployment, version)
    return services.release_create(actor=actor, deployment=deployment, version=found)


# Releases -------------------------------------------------------------------------------------


@page("GET")
def release_list(request: HttpRequest) -> HttpResponse:
    filterset = ReleaseFilterSet(
        request.GET or None, queryset=selectors.release_list(request.user), request=request
    )
    sort, sort_error = list_sort(request, RELEASE_SORTS, "-started")
    valid = not filterset.is_bound or filterset.is_valid()
    releases = filterset.qs.order_by(*RELEASE_SORTS[sort]) if valid else filterset.queryset.none()
    context = {
        "form": filterset.form,
        "page_obj": _paginate(request, releases),
        "sort": sort,
        "sort_error": sort_error,
    }
    template = (
        "frontend/releases/_results.html" if is_htmx(request) else "frontend/releases/list.html"
    )
    response = render(request, template, context, status=200 if valid and not sort_error else 400)
    patch_vary_headers(response, ["HX-Request"])
    return response


DECISIONS = ("approve", "reject")


def _release_context(
    request: HttpRequest,
    release: Release,
    *,
    decision_form: ReleaseDecisionForm | None = None,
    operation_form: ReleaseOperationForm | None = None,
) -> dict[str, Any]:
    actions = selectors.release_actions(request.user, release)
    return {
        "release": release,
        "stages": release_stages(release),
        "gates": selectors.release_gates(release),
        "timeline": selectors.release_timeline(release),
        "charts": release_charts(release),
        "weights": selectors.traffic_weights(release),
        "approvals": list(release.approvals.all()),
        "diff": release_version_diff(release),
        "decisions": [verb for verb in actions if verb in DECISIONS],
        "operations": [verb for verb in actions if verb not in DECISIONS],
        "decision_form": decision_form or ReleaseDecisionForm(),
        "operation_form": operation_form or ReleaseOperationForm(),
        "is_live": not release.is_terminal,
    }


@page("GET")
def release_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The release page; an HTMX poll gets only its live part, which stops polling once the
    release is terminal."""
    release = selectors.release_detail(request.user, pk)
    template = (
        "frontend/releases/_live.html" if is_htmx(request) else "frontend/releases/detail.html"
    )
    response = render(request, template, _release_context(request, release))
    patch_vary_headers(response, ["HX-Request"])
    return response


@page("POST")
def release_action(request: HttpRequest, pk: int, verb: str) -> HttpResponse:
    if verb not in RELEASE_SERVICES:
        raise Http404(f"no release action {verb!r}")
    release = selectors.release_detail(request.user, pk)
    service, note_keyword, message = RELEASE_SERVICES[verb]
    form: ReleaseDecisionForm | ReleaseOperationForm = (
        ReleaseDecisionForm(request.POST)
        if verb in DECISIONS
        else ReleaseOperationForm(request.POST)
    )
    if form.is_valid():
        kwargs: dict[str, Any] = {note_keyword: form.cleaned_data[note_keyword]}
        if verb in DECISIONS:
            kwargs["decision"] = verb
        outcome = run_action(
            request,
            service,
            form=form,
            release=release,
            success=message.format(pk=release.pk),
            **kwargs,
        )
        if outcome.ok:
            return redirect("release-detail", pk=release.pk)
        status = outcome.status
    else:
        status = 400
    # The form comes back with its error on the field at fault, over the release as it is now
    # (a refused action left nothing behind: run_action rolled it back).
    forms_back: dict[str, Any] = (
        {"decision_form": form} if verb in DECISIONS else {"operation_form": form}
    )
    context = _release_context(request, selectors.release_detail(request.user, pk), **forms_back)
    return render(request, "frontend/releases/detail.html", context, status=status)
