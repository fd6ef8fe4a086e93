"""Portal pages for alerts, on-call and incidents: my alerts and my teams' alerts, one alert with
its deployment's tiles and the rollback button, schedules with who is on call now and next,
escalation policies, incidents. Thin views that read through alerts.selectors and alerts.oncall,
write through alerts.lifecycle and alerts.incidents (always via `run_action`) and render
templates; `can()` is only asked which buttons to show, never trusted to refuse."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from alerts import incidents, lifecycle, oncall, selectors
from alerts.filtersets import AlertFilterSet, IncidentFilterSet
from alerts.models import Alert, AlertStatus, Incident, Schedule
from core import clock
from deployments import selectors as deployment_selectors
from deployments.models import Deployment
from identity import selectors as identity_selectors
from identity.permissions import Action, can
from monitoring import selectors as monitoring_selectors

from .alert_forms import (
    AcknowledgeForm,
    AlertViewForm,
    IncidentListForm,
    IncidentOwnerForm,
    IncidentStatusForm,
    NoteForm,
    ReassignForm,
    ResolveForm,
    SilenceForm,
)
from .monitoring_views import REFRESH_SECONDS
from .views import _paginate, page, run_action

SHIFT_DAYS = 7


@dataclass(frozen=True)
class Verb:
    """One action of a page: the form that parses it, the domain function it calls, the names
    the function gives the form's fields (when they differ), and the message on success."""

    form: type[forms.Form]
    service: Any
    success: str
    renames: tuple[tuple[str, str], ...] = ()

    def arguments(self, form: forms.Form) -> dict[str, Any]:
        renames = dict(self.renames)
        return {renames.get(name, name): value for name, value in form.cleaned_data.items()}


ALERT_VERBS: dict[str, Verb] = {
    "acknowledge": Verb(AcknowledgeForm, lifecycle.acknowledge, "You acknowledged alert #{pk}."),
    "resolve": Verb(ResolveForm, lifecycle.resolve, "Alert #{pk} resolved."),
    "silence": Verb(SilenceForm, lifecycle.silence, "Alert #{pk} silenced."),
    "reassign": Verb(
        ReassignForm,
        lifecycle.reassign,
        "Alert #{pk} handed over.",
        renames=(("assignee", "username"),),
    ),
    "note": Verb(NoteForm, lifecycle.add_note, "Note added to alert #{pk}."),
    "open-incident": Verb(forms.Form, incidents.open_incident, "Incident opened from alert #{pk}."),
}

INCIDENT_VERBS: dict[str, Verb] = {
    "note": Verb(NoteForm, incidents.add_note, "Note added to incident #{pk}."),
    "status": Verb(IncidentStatusForm, incidents.set_status, "Incident #{pk} updated."),
    "owner": Verb(
        IncidentOwnerForm,
        incidents.set_owner,
        "Incident #{pk} has a new owner.",
        renames=(("owner", "username"),),
    ),
}


# Presentation of stored JSON ------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return str(value)


def readable(mapping: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(name, text) rows of a JSON object, nested keys joined with dots, for a <dl>: evidence
    and event data read as fields, never as a Python repr."""
    if not isinstance(mapping, dict):
        return [] if mapping in (None, "", []) else [("value", _text(mapping))]
    rows: list[tuple[str, str]] = []
    for key in sorted(mapping, key=str):
        value = mapping[key]
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows.extend(readable(value, f"{name}."))
        elif isinstance(value, list | tuple) and not any(isinstance(v, dict) for v in value):
            rows.append((name.replace("_", " "), ", ".join(_text(v) for v in value) or "—"))
        else:
            rows.append((name.replace("_", " "), _text(value)))
    return rows


def _portal_link(link: str | None) -> str | None:
    """A timeline link only when it is a path of this portal (never another site, never
    javascript:)."""
    return link if link and link.startswith("/") and not link.startswith("//") else None


def _rollback_button(user: Any, deployment: Deployment | None) -> dict[str, Any]:
    """Whether the page shows the rollback button (a link to the confirmation step, which names
    the version and holds the runbook), and the version it returns to."""
    allowed = deployment is not None and can(user, Action.DEPLOYMENT_ROLLBACK, deployment)
    return {
        "can_rollback": allowed,
        "rollback_target": deployment_selectors.rollback_target(deployment) if allowed else None,
    }


# Alerts ---------------------------------------------------------------------------------------


@page("GET")
def alert_list(request: HttpRequest) -> HttpResponse:
    """My alerts by default; the tabs show my teams' open and resolved alerts and the triage
    list (alerts whose labels named no deployment). Each tab filters (state, severity, assigned
    to me, one deployment), sorts on its column headers and pages."""
    form = AlertViewForm(request.GET or None)
    view = form.chosen()
    sort = form.ordering()
    alerts = AlertFilterSet(
        form.filters(), queryset=selectors.alerts_in_view(request.user, view), request=request
    ).qs
    context = {
        "form": form,
        "view": view,
        "views": selectors.AlertView.choices,
        "sort": sort,
        "filtered": bool(form.filters()),
        "page_obj": _paginate(request, selectors.alerts_sorted(alerts, sort)),
        "now": clock.now(),
    }
    return render(request, "frontend/alerts/list.html", context, status=_list_status(form))


def _list_status(form: forms.Form) -> int:
    return 400 if form.is_bound and not form.is_valid() else 200


def _alert_page(
    request: HttpRequest,
    alert: Alert,
    *,
    bound: tuple[str, forms.Form] | None = None,
    status: int = 200,
) -> HttpResponse:
    user = request.user
    deployment = alert.deployment
    health = None
    if deployment is not None:
        _, seconds = monitoring_selectors.window_of(monitoring_selectors.DEFAULT_WINDOW)
        health = monitoring_selectors.deployment_monitoring(user, deployment.pk, seconds)
    can_respond = can(user, Action.ALERT_RESPOND, alert)
    action_forms: dict[str, forms.Form] = {
        "acknowledge": AcknowledgeForm(),
        "resolve": ResolveForm(),
        "silence": SilenceForm(),
        "reassign": ReassignForm(),
        "note": NoteForm(),
    }
    if bound is not None:
        action_forms[bound[0]] = bound[1]
    if can_respond:
        action_forms["reassign"].offer(identity_selectors.team_members(alert.team))  # type: ignore[attr-defined]
    context = {
        "alert": alert,
        "now": clock.now(),
        "labels": sorted(alert.labels.items()) if isinstance(alert.labels, dict) else [],
        "annotations": readable(alert.annotations),
        "evidence": readable(alert.evidence),
        "events": [(e, readable(e.data)) for e in selectors.alert_events(alert)],
        "deliveries": list(selectors.alert_deliveries(alert)),
        "health": health,
        "deployment": deployment,
        "window": monitoring_selectors.DEFAULT_WINDOW,
        "refresh": REFRESH_SECONDS,
        "can_respond": can_respond and alert.is_open,
        "acknowledged": alert.status == AlertStatus.ACKNOWLEDGED,
        "can_open_incident": (
            alert.incident_id is None and can(user, Action.INCIDENT_MANAGE, alert)
        ),
        "forms": action_forms,
        **_rollback_button(user, deployment),
    }
    return render(request, "frontend/alerts/detail.html", context, status=status)


@page("GET")
def alert_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _alert_page(request, selectors.alert_get(request.user, pk))


@page("POST")
def alert_action(request: HttpRequest, pk: int, verb: str) -> HttpResponse:
    """Acknowledge, resolve, silence, reassign, note, open an incident: one form each, posted
    here; a refusal re-renders the alert page with the error on the form's field."""
    if verb not in ALERT_VERBS:
        raise Http404(f"no alert action {verb!r}")
    return _perform(
        request,
        verb,
        ALERT_VERBS[verb],
        "alert",
        lambda: selectors.alert_get(request.user, pk),
        _alert_page,
    )


def _perform(
    request: HttpRequest,
    verb: str,
    action: Verb,
    keyword: str,
    lookup: Callable[[], Any],
    page_of: Callable[..., HttpResponse],
) -> HttpResponse:
    """Parse the verb's form, call its domain function on the looked-up object (passed as
    `keyword`) through `run_action`, and go to the object's page (or to the incident it
    opened); a bad form or a refusal re-renders the page with that form bound, at 4xx."""
    target = lookup()
    form = action.form(request.POST)
    if not form.is_valid():
        return page_of(request, target, bound=(verb, form), status=400)
    outcome = run_action(
        request,
        action.service,
        form=form,
        success=action.success.format(pk=target.pk),
        **{keyword: target},
        **action.arguments(form),
    )
    if outcome.ok:
        if isinstance(outcome.value, Incident):
            return redirect("incident-detail", pk=outcome.value.pk)
        return redirect(f"{keyword}-detail", pk=target.pk)
    # Read again: the failed action was rolled back, the page shows what is true.
    return page_of(request, lookup(), bound=(verb, form), status=outcome.status)


# On-call --------------------------------------------------------------------------------------


@page("GET")
def schedule_list(request: HttpRequest) -> HttpResponse:
    """Every schedule of my teams with who is on call now and who is next. The schedules come
    with their layers, members and overrides in a fixed number of queries (with_rotations), so
    the page does not grow a query per schedule."""
    now = clock.now()
    schedules = list(oncall.with_rotations(selectors.schedule_list(request.user)))
    rows = [(schedule, *oncall.now_and_next(schedule, now)) for schedule in schedules]
    return render(request, "frontend/oncall/list.html", {"rows": rows, "now": now})


@dataclass(frozen=True)
class ShiftBar:
    """One shift of the next days, placed on a bar of the whole period (percent)."""

    shift: oncall.Shift
    offset: float
    width: float

    @property
    def is_gap(self) -> bool:
        return not self.shift.users


def shift_bars(shifts: list[oncall.Shift], start: datetime, end: datetime) -> list[ShiftBar]:
    total = (end - start).total_seconds()
    bars = []
    for shift in shifts:
        left = max(shift.start, start)
        right = min(shift.end, end)
        if right <= left:
            continue
        bars.append(
            ShiftBar(
                shift,
                offset=round((left - start).total_seconds() / total * 100, 3),
                width=round((right - left).total_seconds() / total * 100, 3),
            )
        )
    return bars


@page("GET")
def schedule_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One schedule: its layers, overrides to come, and the next seven days of shifts, where a
    gap is shown as a gap (an alert then goes to the policy's next step)."""
    found = selectors.schedule_get(request.user, pk)
    schedule: Schedule = oncall.with_rotations(Schedule.objects.filter(pk=found.pk)).get()
    now = clock.now()
    end = now + timedelta(days=SHIFT_DAYS)
    context = {
        "schedule": schedule,
        "team": found.team,
        "layers": list(schedule.layers.all()),
        "overrides": [o for o in schedule.overrides.all() if o.ends_at > now],
        "bars": shift_bars(oncall.shifts(schedule, now, end), now, end),
        "now": now,
        "end": end,
        "days": SHIFT_DAYS,
        "can_manage": can(request.user, Action.ONCALL_MANAGE, schedule),
    }
    return render(request, "frontend/oncall/detail.html", context)


@page("GET")
def policy_list(request: HttpRequest) -> HttpResponse:
    policies = list(selectors.policies_with_steps(request.user))
    return render(request, "frontend/oncall/policies.html", {"policies": policies})


# Incidents ------------------------------------------------------------------------------------


@page("GET")
def incident_list(request: HttpRequest) -> HttpResponse:
    """My teams' incidents, open ones first; filtered by status, severity and owner (me),
    sorted on the column headers, paged."""
    form = IncidentListForm(request.GET or None)
    sort = form.ordering()
    found = IncidentFilterSet(
        form.filters(), queryset=selectors.incident_list(request.user), request=request
    ).qs
    context = {
        "form": form,
        "sort": sort,
        "filtered": bool(form.filters()),
        "page_obj": _paginate(request, selectors.incidents_sorted(found, sort)),
    }
    return render(request, "frontend/incidents/list.html", context, status=_list_status(form))


def _incident_page(
    request: HttpRequest,
    incident: Incident,
    *,
    bound: tuple[str, forms.Form] | None = None,
    status: int = 200,
) -> HttpResponse:
    user = request.user
    can_manage = can(user, Action.INCIDENT_MANAGE, incident)
    action_forms: dict[str, forms.Form] = {
        "note": NoteForm(),
        "status": IncidentStatusForm(initial={"status": incident.status}),
        "owner": IncidentOwnerForm(),
    }
    if bound is not None:
        action_forms[bound[0]] = bound[1]
    if can_manage:
        action_forms["owner"].offer(identity_selectors.team_members(incident.team))  # type: ignore[attr-defined]
    deployment = incident.deployment
    entries = [(entry, _portal_link(entry.link)) for entry in incidents.timeline(incident)]
    context = {
        "incident": incident,
        "deployment": deployment,
        "entries": entries,
        "can_manage": can_manage,
        "forms": action_forms,
        **_rollback_button(user, deployment),
    }
    return render(request, "frontend/incidents/detail.html", context, status=status)


@page("GET")
def incident_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _incident_page(request, selectors.incident_get(request.user, pk))


@page("POST")
def incident_action(request: HttpRequest, pk: int, verb: str) -> HttpResponse:
    """A note, a status change (closing needs a summary) or a new owner."""
    if verb not in INCIDENT_VERBS:
        raise Http404(f"no incident action {verb!r}")
    return _perform(
        request,
        verb,
        INCIDENT_VERBS[verb],
        "incident",
        lambda: selectors.incident_get(request.user, pk),
        _incident_page,
    )
