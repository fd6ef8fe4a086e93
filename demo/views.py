"""The demo's control panel (/demo/): drifted traffic on or off, and a fault in one version.
Only in demo mode; the switches are demo.services."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from core.errors import NotFound
from deployments.models import Deployment
from frontend.views import page, run_action

from . import services


def _demo_deployment(request: HttpRequest) -> Deployment:
    deployment = (
        Deployment.objects.visible_to(request.user)
        .select_related("environment", "model", "stable_version")
        .filter(environment__metrics_kind="local")
        .order_by("pk")
        .first()
    )
    if deployment is None:
        raise NotFound("no demo deployment is visible to you")
    return deployment


@page("GET", "POST")
def demo_panel(request: HttpRequest) -> HttpResponse:
    control = services.traffic_control()  # 404 outside demo mode
    deployment = _demo_deployment(request)
    if request.method == "POST":
        if "drift" in request.POST:
            run_action(
                request,
                services.traffic_control_set,
                deployment=deployment,
                drift=request.POST["drift"] == "on",
                success="Traffic generator switched.",
            )
        else:
            try:
                version = int(request.POST.get("version", ""))
            except ValueError:
                version = -1
            run_action(
                request,
                services.version_fault_set,
                deployment=deployment,
                version=version,
                fault=request.POST.get("fault", ""),
                success="Fault switch set.",
            )
        return redirect("demo")
    context = {
        "deployment": deployment,
        "control": control,
        "faults": services.version_faults(deployment),
        "active_release": deployment.releases.active().select_related("version").first(),
    }
    return render(request, "demo/panel.html", context)
