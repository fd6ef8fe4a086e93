"""Portal pages for deployments, releases and rollbacks: thin views that read through
deployments.selectors, write through deployments.services (always via `run_action`) and render
templates. They never hold a query, a permission rule or a state rule of their own; `can()` and
`selectors.release_actions()` are only asked which buttons to show."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers

from alerts import selectors as alert_selectors
from deployments import selectors, services
from deployments.filtersets import ReleaseFilterSet
from deployments.models import Deployment, Release
from identity.permissions import Action, can

from .deployment_forms import ReleaseActionForm, RollbackForm, StartReleaseForm
from .views import _paginate, is_htmx, page, run_action

VERSIONS_OFFERED = 50
# Deployments per page of the overview: an installation has thousands, and every row costs
# its objects and its markup, so the page is bounded (grouped per environment within it).
OVERVIEW_PAGE_SIZE = 50

RELEASE_SERVICES: dict[str, tuple[Any, str, str]] = {
    # verb: (service, keyword of the note, message on success)
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
    context = {
        "deployment": deployment,
        "config": deployment.config,
        "tile": selectors.deployment_tile(deployment),
        "releases": list(selectors.deployment_releases(deployment)[: selectors.RECENT_RELEASES]),
        "rollbacks": list(selectors.deployment_rollbacks(deployment)[: selectors.RECENT_ROLLBACKS]),
        "can_rollback": can(request.user, Action.DEPLOYMENT_ROLLBACK, deployment),
        "rollback_target": selectors.rollback_target(deployment),
        "can_start_release": can(request.user, Action.RELEASE_CREATE, deployment),
        "start_form": start_form,
    }
    return render(request, "frontend/deployments/detail.html", context, status=status)


@page("GET")
def deployment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _deployment_page(request, selectors.deployment_get(request.user, pk))


@page("GET")
def deployment_configs(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = selectors.deployment_get(request.user, pk)
    return render(
        request,
        "frontend/deployments/configs.html",
        {"deployment": deployment, "configs": list(selectors.deployment_configs(deployment))},
    )


@page("GET", "POST")
def deployment_rollback(request: HttpRequest, pk: int) -> HttpResponse:
    """The confirmation step of the rollback button (GET), naming the version it returns to,
    with the deployment's runbook (rollback notes) and its open alerts; and the rollback
    itself (POST)."""
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
                return redirect("deployment-detail", pk=deployment.pk)
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
    return render(request, "frontend/deployments/rollback_confirm.html", context, status=status)


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
    valid = not filterset.is_bound or filterset.is_valid()
    releases = filterset.qs if valid else filterset.queryset.none()
    context = {"form": filterset.form, "page_obj": _paginate(request, releases)}
    template = (
        "frontend/releases/_results.html" if is_htmx(request) else "frontend/releases/list.html"
    )
    response = render(request, template, context, status=200 if valid else 400)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _release_context(request: HttpRequest, release: Release) -> dict[str, Any]:
    return {
        "release": release,
        "path": selectors.release_path(release),
        "gates": selectors.release_gates(release),
        "timeline": selectors.release_timeline(release),
        "weights": selectors.traffic_weights(release),
        "approvals": list(release.approvals.all()),
        "actions": selectors.release_actions(request.user, release),
        "action_form": ReleaseActionForm(),
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
    form = ReleaseActionForm(request.POST)
    if form.is_valid():
        service, note_keyword, message = RELEASE_SERVICES[verb]
        kwargs: dict[str, Any] = {note_keyword: form.cleaned_data["note"]}
        if service is services.release_decide:
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
    context = _release_context(request, selectors.release_detail(request.user, pk))
    context["action_form"] = form
    return render(request, "frontend/releases/detail.html", context, status=status)
