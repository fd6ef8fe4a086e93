"""Portal pages of the human review queues: the signed-in reviewer's queue (with its tabs and
"Take next") and one item's page (input summary, prediction, the decide form, the appeal, the
history). Thin views that read through reviews.selectors, write through reviews.claims and
reviews.decisions (always via `run_action`) and render templates. Who may take an item is
asked of `selectors.take_refusal` only to choose what to show; the services refuse.

Privacy: an item's input summary is rendered on its page and nowhere else; it is never put in a
message, a log line or a URL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from core import clock
from core.errors import Forbidden
from deployments import selectors as deployment_selectors
from deployments.models import Deployment
from identity.permissions import Action, can
from reviews import claims, decisions, selectors, sla
from reviews.models import Decision, ReviewItem, ReviewStatus

from .alert_views import Verb, readable
from .review_forms import (
    PROBABILITIES_KEY,
    ClaimForm,
    DecideForm,
    QueueViewForm,
    ReleaseForm,
    ReviewTab,
    TakeNextForm,
    correction_classes,
    probabilities_of,
)
from .views import _paginate, list_sort, page, run_action

# How far back "Recently decided" looks.
RECENT_DAYS = 30
APPEAL_LEVEL = 2

REVIEW_VERBS: dict[str, Verb] = {
    "claim": Verb(ClaimForm, claims.claim, "You hold {ref}; decide it before your claim runs out."),
    "release": Verb(ReleaseForm, claims.release, "{ref} is back in the queue."),
    # Its message names the decision taken (review_action), so none here.
    "decide": Verb(DecideForm, decisions.decide, "", renames=(("output", "corrected_output"),)),
}
DECIDED_AS = {Decision.CONFIRM: "confirmed", Decision.OVERRIDE: "overrode"}
# The sorts of the queue's tabs (validated by `list_sort`), each tab's default first: open items
# earliest deadline first, decisions newest first.
QUEUE_SORTS: dict[str, tuple[str, ...]] = {
    "due": ("sla_deadline", "id"),
    "-due": ("-sla_deadline", "-id"),
    "reason": ("reason", "sla_deadline", "id"),
    "-reason": ("-reason", "sla_deadline", "id"),
}
DECIDED_SORTS: dict[str, tuple[str, ...]] = {
    "-decided": ("-decided_at", "-id"),
    "decided": ("decided_at", "id"),
    "reason": ("reason", "-decided_at", "-id"),
    "-reason": ("-reason", "-decided_at", "-id"),
}


# Presentation ---------------------------------------------------------------------------------


def _duration(delta: timedelta) -> str:
    minutes = int(abs(delta).total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min" if minutes else "under a minute"


@dataclass(frozen=True)
class SlaLeft:
    """An item's SLA as a reviewer reads it: the time left, or how long ago it was breached."""

    left: timedelta | None

    @property
    def breached(self) -> bool:
        return self.left is not None and self.left <= timedelta(0)

    @property
    def text(self) -> str:
        if self.left is None:
            return "—"
        if self.breached:
            return f"breached {_duration(self.left)} ago"
        return f"{_duration(self.left)} left"


@dataclass(frozen=True)
class QueueRow:
    """One row of the queue: the item, its SLA, whoever holds a live claim on it (or None),
    and whether that is the signed-in reviewer."""

    item: ReviewItem
    sla: SlaLeft
    holder: Any
    mine: bool


def _items_of(principal: Any, tab: ReviewTab, deployment: Deployment | None, now: datetime) -> Any:
    if tab == ReviewTab.DECIDED:
        return selectors.recently_decided(
            principal, since=now - timedelta(days=RECENT_DAYS), deployment=deployment
        )
    level = APPEAL_LEVEL if tab == ReviewTab.APPEALS else None
    items = selectors.queue_for(principal, deployment=deployment, level=level, now=now)
    return selectors.claimed_by(items, principal) if tab == ReviewTab.MINE else items


# The queue ------------------------------------------------------------------------------------


def _row(item: ReviewItem, user: Any, now: datetime) -> QueueRow:
    holder = item.claim_holder(now)
    mine = holder is not None and holder.pk == user.pk
    return QueueRow(item, SlaLeft(sla.time_left(item, now)), holder, mine)


def _queue_url(tab: ReviewTab, deployment_id: int | None) -> str:
    query = {"view": tab.value} if tab != ReviewTab.QUEUE else {}
    if deployment_id:
        query["deployment"] = str(deployment_id)
    return reverse("reviews") + (f"?{urlencode(query)}" if query else "")


def _queue_page(request: HttpRequest, form: QueueViewForm, *, status: int = 200) -> HttpResponse:
    user = request.user
    tab = form.chosen()
    if form.is_bound and not form.is_valid():
        status = 400
    deployment_id = form.deployment_id()
    deployment = (
        deployment_selectors.deployment_get(user, deployment_id, field="deployment")
        if deployment_id
        else None
    )
    now = clock.now()
    context: dict[str, Any] = {
        "form": form,
        "tab": tab,
        "tabs": [(t, _queue_url(t, deployment_id)) for t in ReviewTab],
        "deployment": deployment,
        "all_url": _queue_url(tab, None),
        "clear_url": _queue_url(tab, deployment_id),
        "now": now,
        "recent_days": RECENT_DAYS,
    }
    try:
        items = _items_of(user, tab, deployment, now)
    except Forbidden as refusal:
        # Someone without the reviewer duty anywhere: say so (and how to get it), not an empty
        # queue that would look like nothing waits.
        context["refusal"] = refusal.reason
        return render(request, "frontend/reviews/queue.html", context, status=403)
    reason = form.reason_chosen()
    if reason:
        items = items.filter(reason=reason)
    sorts = DECIDED_SORTS if tab == ReviewTab.DECIDED else QUEUE_SORTS
    sort, sort_error = list_sort(request, sorts, next(iter(sorts)))
    if sort_error:
        status = 400
    page_obj = _paginate(request, items.order_by(*sorts[sort]))
    context.update(sort=sort, sort_error=sort_error, reason=reason)
    context["page_obj"] = page_obj
    context["rows"] = [_row(item, user, now) for item in page_obj.object_list]
    context["take_next"] = TakeNextForm(
        initial={
            "deployment": deployment_id,
            "level": APPEAL_LEVEL if tab == ReviewTab.APPEALS else None,
        }
    )
    return render(request, "frontend/reviews/queue.html", context, status=status)


@page("GET")
def review_queue(request: HttpRequest) -> HttpResponse:
    """The items the signed-in reviewer may take, earliest SLA deadline first, with the time
    left; tabs for the items they hold, appeals (level 2) and recent decisions. A deployment
    (`?deployment=<id>`, from a row's link) narrows every tab and "Take next"."""
    return _queue_page(request, QueueViewForm(request.GET if request.GET else None))


@page("POST")
def review_take_next(request: HttpRequest) -> HttpResponse:
    """Claim the item due first among those the reviewer may take (within the deployment and
    level the queue showed) and open it; back to the queue when nothing waits. A refusal
    re-renders the queue at 4xx with the reason."""
    form = TakeNextForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Take next: the queue's filter was not understood.")
        return _queue_page(request, QueueViewForm(), status=400)
    deployment_id = form.cleaned_data["deployment"]
    level = form.cleaned_data["level"]
    tab = ReviewTab.APPEALS if level == APPEAL_LEVEL else ReviewTab.QUEUE
    deployment = (
        deployment_selectors.deployment_get(request.user, deployment_id, field="deployment")
        if deployment_id
        else None
    )
    outcome = run_action(request, claims.claim_next, deployment=deployment, level=level)
    if not outcome.ok:
        shown = QueueViewForm({"view": tab.value, "deployment": deployment_id or ""})
        return _queue_page(request, shown, status=outcome.status)
    if outcome.value is None:
        what = "appeal" if level == APPEAL_LEVEL else "item"
        messages.info(request, f"No {what} waits for you: the queue is empty or others hold it.")
        return redirect(_queue_url(tab, deployment_id))
    item = outcome.value
    messages.success(request, f"You hold {item.ref}; decide it before your claim runs out.")
    return redirect("review-detail", ref=item.ref)


# One item -------------------------------------------------------------------------------------


def _prediction_rows(prediction: Any) -> list[tuple[str, str]]:
    """The prediction's fields but its probabilities (shown as their own table)."""
    if isinstance(prediction, dict):
        return readable({k: v for k, v in prediction.items() if k != PROBABILITIES_KEY})
    return readable(prediction)


def _item_page(
    request: HttpRequest,
    item: ReviewItem,
    *,
    bound: tuple[str, forms.Form] | None = None,
    status: int = 200,
) -> HttpResponse:
    user = request.user
    now = clock.now()
    holder = item.claim_holder(now)
    appeal = getattr(item, "appeal", None)  # loaded with the item (None: not appealed)
    # Why this reviewer may not take the item now (held by someone else; an appeal of their own
    # decision): the selectors' rule, asked only to choose between the form and the reason.
    refusal = selectors.take_refusal(item, user, now) if item.is_open else None
    may_decide = can(user, Action.REVIEW_DECIDE, item)
    can_decide = item.is_open and may_decide
    action_forms: dict[str, forms.Form] = {
        "decide": DecideForm(classes=correction_classes(item.prediction)),
        "release": ReleaseForm(),
    }
    if bound is not None:
        action_forms[bound[0]] = bound[1]
    context = {
        "item": item,
        "now": now,
        "sla": SlaLeft(sla.time_left(item, now)),
        "holder": holder,
        "mine": holder is not None and holder.pk == user.pk,
        "summary": readable(item.input_summary) if item.summary_purged_at is None else [],
        "prediction": _prediction_rows(item.prediction),
        "probabilities": [
            (name, p, round(p * 100, 1)) for name, p in probabilities_of(item.prediction)
        ],
        "explanation": readable(item.explanation),
        "final_output": readable(item.final_output),
        "appeal": appeal,
        "appealed_output": readable(appeal.appealed_output) if appeal is not None else [],
        "events": [(e, readable(e.detail)) for e in selectors.history_of(item)],
        "may_decide": may_decide,
        "can_decide": can_decide and refusal is None,
        "refusal": refusal.reason if can_decide and refusal is not None else None,
        "can_release": (
            can_decide and item.status == ReviewStatus.CLAIMED and item.claimed_by_id == user.pk
        ),
        "forms": action_forms,
    }
    response = render(request, "frontend/reviews/detail.html", context, status=status)
    # The input summary is personal data: no browser or proxy keeps a copy.
    add_never_cache_headers(response)
    return response


def _item(request: HttpRequest, ref: str) -> ReviewItem:
    return selectors.item_for(request.user, ref, Action.REVIEW_VIEW)


@page("GET")
def review_detail(request: HttpRequest, ref: str) -> HttpResponse:
    return _item_page(request, _item(request, ref))


@page("POST")
def review_action(request: HttpRequest, ref: str, verb: str) -> HttpResponse:
    """Claim, release or decide: one form each, posted here; a refusal (an appeal of one's own
    decision, a claim someone else holds, a missing reason) re-renders the item page with the
    error on the form's field, at 4xx."""
    if verb not in REVIEW_VERBS:
        raise Http404(f"no review action {verb!r}")
    action = REVIEW_VERBS[verb]
    item = _item(request, ref)
    form = (
        DecideForm(request.POST, classes=correction_classes(item.prediction))
        if action.form is DecideForm
        else action.form(request.POST)
    )
    if not form.is_valid():
        return _item_page(request, item, bound=(verb, form), status=400)
    success = "" if verb == "decide" else action.success.format(ref=item.ref)
    outcome = run_action(
        request, action.service, form=form, success=success, item=item, **action.arguments(form)
    )
    if not outcome.ok:
        # Read again: the failed action was rolled back, the page shows what is true.
        return _item_page(request, _item(request, ref), bound=(verb, form), status=outcome.status)
    if verb == "decide":
        decided: ReviewItem = outcome.value
        final = " This decision is final." if decided.level == APPEAL_LEVEL else ""
        messages.success(
            request,
            f"You {DECIDED_AS[Decision(decided.decision)]} the prediction of {decided.ref}.{final}",
        )
    if verb == "release":
        return redirect("reviews")
    return redirect("review-detail", ref=item.ref)
