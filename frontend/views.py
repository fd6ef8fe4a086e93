"""Portal pages: thin views that read through registry selectors, write through registry services
(always via `run_action`) and render templates. They must never hold a query, a permission rule
or a state rule of their own; `can()` is only asked which buttons to show."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django import forms as django_forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.utils.functional import cached_property
from django.views.decorators.http import require_http_methods

from core.errors import DomainError, Forbidden, NotFound
from identity import selectors as identity_selectors
from identity import services as identity_services
from identity.audit import Actor
from identity.filtersets import AuditEventFilterSet, TeamFilterSet
from identity.models import Role, Team, team_roles
from identity.permissions import Action, can
from registry import selectors, services
from registry.filtersets import ModelFilterSet
from registry.models import RegisteredModel

from .forms import AliasForm, MembershipForm, TokenForm, VersionUpdateForm, model_filter_form

PAGE_SIZE = 25
COUNT_CAP = 10_000  # rows a list page counts before it says "more than"
DEFERRED_JOIN_FROM = 1_000  # rows skipped from which a page finds its ids first
VERSIONS_SHOWN = 100
MODEL_SORTS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "-name": ("-name",),
    "updated": ("updated_at", "name"),
    "-updated": ("-updated_at", "name"),
}
# The audit log sorts by time only: its other columns have no index, and a sort by them would
# read every event of a big log (500,000 rows) for each page.
AUDIT_SORTS: dict[str, tuple[str, ...]] = {
    "occurred": ("occurred_at", "id"),
    "-occurred": ("-occurred_at", "-id"),
}
TEAM_SORTS: dict[str, tuple[str, ...]] = {
    "name": ("name", "slug"),
    "-name": ("-name", "-slug"),
    "slug": ("slug",),
    "-slug": ("-slug",),
}
_FAILED_ACTION = "_frontend_action_failed"

View = Callable[..., HttpResponse]


# The page helpers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a service call from a page came to: its return value, or the domain error."""

    value: Any = None
    error: DomainError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> int:
        return 200 if self.error is None else self.error.status_code


def run_action(
    request: HttpRequest,
    fn: Callable[..., Any],
    *,
    form: django_forms.Form | None = None,
    success: str = "",
    **kwargs: Any,
) -> Outcome:
    """Call a registry service as the signed-in user. A DomainError becomes a page message (and
    an error on `form`, on the field it names), the action's writes are rolled back, and the
    request's transaction is marked to roll back too; the caller re-renders with
    `outcome.status`. This is the only try/except around a service in the pages."""
    try:
        # Our own savepoint: a failed action leaves nothing behind even when `fn` is not atomic,
        # and the page can still read the database to re-render afterwards.
        with transaction.atomic():
            value = fn(actor=Actor.from_principal(request.user), **kwargs)
    except DomainError as error:
        setattr(request, _FAILED_ACTION, True)
        field = error.field if form is not None and error.field in form.fields else None
        if form is not None:
            form.add_error(field, error.reason)
        label = error.field.replace("_", " ") if error.field else ""
        messages.error(request, f"{error.title}: {label + ' ' if label else ''}{error.reason}")
        return Outcome(error=error)
    if success:
        messages.success(request, success)
    return Outcome(value=value)


def page(*methods: str) -> Callable[[View], View]:
    """A login-required page answering only `methods`. Selector NotFound/Forbidden become
    404/403, and a request whose action failed has its transaction rolled back (after the
    response was rendered, which still needed to read)."""
    allowed = list(methods) or ["GET"]
    if "GET" in allowed:
        allowed.append("HEAD")

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                response = view(request, *args, **kwargs)
            except NotFound as error:
                raise Http404(error.reason) from error
            except Forbidden as error:
                raise PermissionDenied(error.reason) from error
            if (
                getattr(request, _FAILED_ACTION, False)
                and transaction.get_connection().in_atomic_block
            ):
                transaction.set_rollback(True)
            return response

        return login_required(require_http_methods(allowed)(wrapped))

    return decorate


def is_htmx(request: HttpRequest) -> bool:
    """An HTMX request that wants a fragment (a history restore wants the whole page)."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


class CappedPaginator(Paginator):
    """A paginator whose count stops at `cap` rows, or just past the page asked for when that
    is further: counting every row of a big table (500,000 audit events) costs a scan of them
    on every page, and "more than 10,000" says as much to a reader. Below the cap the count is
    exact; above it `capped` is true, and the count is the rows seen (one more than the cap),
    so the page asked for and its "next" link still exist."""

    def __init__(self, object_list: Any, per_page: int, *, cap: int | None = None) -> None:
        super().__init__(object_list, per_page)
        self.cap = COUNT_CAP if cap is None else cap

    def get_page(self, number: Any) -> Page:
        try:
            wanted = int(number)
        except (TypeError, ValueError):
            wanted = 1
        self.cap = max(self.cap, min(wanted, 2**31) * self.per_page)
        return super().get_page(number)

    @cached_property
    def count(self) -> int:
        if not hasattr(self.object_list, "query"):  # a list: its length is known
            return len(self.object_list)
        # Unordered: counting needs no sort, so the index that filters can answer alone.
        return self.object_list.order_by()[: self.cap + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > self.cap

    def page(self, number: Any) -> Page:
        """A deep page's rows by a deferred join: the ids of the page first (a narrow query
        that reads what it filters and sorts on, an index usually), then those rows with their
        related objects. Slicing the full query joins every row it skips, so page 500 cost
        500 pages of joins. Shallow pages (most requests) stay one query."""
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        rows = self.object_list
        if bottom < DEFERRED_JOIN_FROM or not hasattr(rows, "query") or rows.query.combinator:
            return self._get_page(rows[bottom:top], number, self)
        ids = list(rows.values_list("pk", flat=True)[bottom:top])
        found = {row.pk: row for row in rows.filter(pk__in=ids)}
        return self._get_page([found[pk] for pk in ids if pk in found], number, self)


def _paginate(request: HttpRequest, queryset: Any, per_page: int = PAGE_SIZE) -> Page:
    return CappedPaginator(queryset, per_page).get_page(request.GET.get("page"))


def list_sort(
    request: HttpRequest, sorts: Mapping[str, tuple[str, ...]], default: str
) -> tuple[str, str]:
    """A list page's `?sort=`, checked against the sorts the page offers (`sorts`: key -> the
    order_by of that key, "-key" descending): (key, ""), or for a key it does not offer (the
    default, a reason naming the parameter), which the page shows at 400, sorted the default
    way, rather than guessing."""
    sort = request.GET.get("sort") or default
    if sort in sorts:
        return sort, ""
    offered = ", ".join(sorted(sorts))
    return default, f"sort: {sort[:40]!r} is not a sort of this list; choose one of {offered}."


def _form_status(form: django_forms.Form, outcome: Outcome | None) -> int:
    if outcome is not None:
        return outcome.status
    return 400 if form.is_bound and form.errors else 200


# Models and versions --------------------------------------------------------------------------


@page("GET")
def model_list(request: HttpRequest) -> HttpResponse:
    teams = list(identity_selectors.teams_visible(request.user))
    filterset = ModelFilterSet(
        request.GET or None, queryset=selectors.model_list(request.user), request=request
    )
    form = model_filter_form(filterset.form, teams)
    sort, sort_error = list_sort(request, MODEL_SORTS, "name")
    valid = not filterset.is_bound or filterset.is_valid()
    models_qs = filterset.qs.order_by(*MODEL_SORTS[sort]) if valid else filterset.queryset.none()
    context = {
        "form": form,
        "page_obj": _paginate(request, models_qs),
        "sort": sort,
        "sort_error": sort_error,
        "can_create_in": [team for team in teams if can(request.user, Action.MODEL_CREATE, team)],
    }
    template = "frontend/models/_results.html" if is_htmx(request) else "frontend/models/list.html"
    status = 200 if valid and not sort_error else 400
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _model_page_context(
    request: HttpRequest, model: RegisteredModel, alias_form: AliasForm | None = None
) -> dict[str, Any]:
    versions = list(selectors.version_list(model)[:VERSIONS_SHOWN])
    members = list(identity_selectors.team_members(model.team))
    alias_form = alias_form or AliasForm()
    alias_form.offer(versions)
    return {
        "model": model,
        "versions": versions,
        "aliases": list(selectors.alias_list(model)),
        "owners": [m for m in members if m.role == Role.OWNER],
        "events": selectors.audit_events_for(request.user, model),
        "can_set_alias": can(request.user, Action.ALIAS_SET, model),
        "alias_form": alias_form,
    }


@page("GET", "POST")
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    """The model page; a POST points an alias at a version (in place with HTMX)."""
    model = selectors.model_get(request.user, name)
    form = AliasForm(request.POST if request.method == "POST" else None)
    outcome = None
    if form.is_bound and form.is_valid():
        alias, number = form.cleaned_data["name"], form.cleaned_data["version"]
        outcome = run_action(
            request,
            services.alias_set,
            form=form,
            model=model,
            name=alias,
            version_number=number,
            success=f"Alias {alias} now points at v{number}.",
        )
        if outcome.ok:
            if not is_htmx(request):
                return redirect("model-detail", name=model.name)
            form = AliasForm()  # a fresh form after an in-place change
    context = _model_page_context(request, model, form)
    template = (
        "frontend/models/_alias_update.html"
        if is_htmx(request) and request.method == "POST"
        else "frontend/models/detail.html"
    )
    return render(request, template, context, status=_form_status(form, outcome))


@page("POST")
def alias_delete(request: HttpRequest, name: str, alias: str) -> HttpResponse:
    model = selectors.model_get(request.user, name)
    outcome = run_action(
        request, services.alias_delete, model=model, name=alias, success=f"Alias {alias} removed."
    )
    if outcome.ok:
        return redirect("model-detail", name=model.name)
    context = _model_page_context(request, model)
    return render(request, "frontend/models/detail.html", context, status=outcome.status)


@page("GET", "POST")
def version_detail(request: HttpRequest, name: str, number: int) -> HttpResponse:
    """A version page; a POST changes its status or tags through services.version_update."""
    model = selectors.model_get(request.user, name)
    version = selectors.version_get(model, number)
    outcome = None
    if request.method == "POST":
        form = VersionUpdateForm(request.POST, version=version)
        if form.is_valid():
            outcome = run_action(
                request,
                services.version_update,
                form=form,
                version=version,
                status=form.cleaned_data["status"],
                tags=form.cleaned_data["tags"],
                success=f"v{version.number} updated.",
            )
            if outcome.ok:
                return redirect("version-detail", name=model.name, number=version.number)
    else:
        form = VersionUpdateForm(version=version)
    context = {
        "model": model,
        "version": version,
        "form": form,
        "events": selectors.audit_events_for(request.user, version),
        "can_update": can(request.user, Action.VERSION_UPDATE, version),
    }
    return render(
        request, "frontend/models/version_detail.html", context, status=_form_status(form, outcome)
    )


# Teams, members and tokens --------------------------------------------------------------------


@page("GET")
def team_list(request: HttpRequest) -> HttpResponse:
    """The teams one may see (a superuser: all), searchable, sorted by name or slug, with one's
    role in each."""
    filterset = TeamFilterSet(
        request.GET or None, queryset=identity_selectors.teams_visible(request.user)
    )
    filterset.form.fields["q"].widget = django_forms.TextInput(
        attrs={"type": "search", "placeholder": "name, slug or words"}
    )
    sort, sort_error = list_sort(request, TEAM_SORTS, "name")
    valid = not filterset.is_bound or filterset.is_valid()
    teams_qs = filterset.qs.order_by(*TEAM_SORTS[sort]) if valid else filterset.queryset.none()
    page_obj = _paginate(request, teams_qs)
    roles = team_roles(request.user)
    context = {
        "form": filterset.form,
        "page_obj": page_obj,
        "teams": [(team, roles.get(team.pk, "")) for team in page_obj.object_list],
        "sort": sort,
        "sort_error": sort_error,
        "searched": bool(request.GET.get("q")),
    }
    status = 200 if valid and not sort_error else 400
    return render(request, "frontend/teams/list.html", context, status=status)


def _team_page(
    request: HttpRequest,
    team: Team,
    *,
    member_form: MembershipForm | None = None,
    token_form: TokenForm | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "team": team,
        "members": list(identity_selectors.team_members(team)),
        "tokens": list(identity_selectors.team_tokens(team)),
        "roles": Role.choices,
        "can_manage_members": can(request.user, Action.TEAM_MANAGE_MEMBERS, team),
        "can_manage_tokens": can(request.user, Action.TEAM_MANAGE_TOKENS, team),
        "member_form": member_form or MembershipForm(),
        "token_form": token_form or TokenForm(),
    }
    return render(request, "frontend/teams/detail.html", context, status=status)


@page("GET")
def team_detail(request: HttpRequest, slug: str) -> HttpResponse:
    return _team_page(request, identity_selectors.team_get(request.user, slug))


@page("POST")
def member_set(request: HttpRequest, slug: str) -> HttpResponse:
    """Add a member or change a member's role and duties."""
    team = identity_selectors.team_get(request.user, slug)
    form = MembershipForm(request.POST)
    if not form.is_valid():
        return _team_page(request, team, member_form=form, status=400)
    data = form.cleaned_data
    outcome = run_action(
        request,
        identity_services.membership_set,
        form=form,
        team=team,
        **data,
        success=f"{data['username']} saved.",
    )
    if outcome.ok:
        return redirect("team-detail", slug=team.slug)
    return _team_page(request, team, member_form=form, status=outcome.status)


@page("POST")
def member_remove(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    team = identity_selectors.team_get(request.user, slug)
    outcome = run_action(
        request,
        identity_services.membership_remove,
        team=team,
        username=username,
        success=f"{username} removed.",
    )
    if outcome.ok:
        return redirect("team-detail", slug=team.slug)
    return _team_page(request, team, status=outcome.status)


@page("POST")
def token_create(request: HttpRequest, slug: str) -> HttpResponse:
    """Issue a token and show its secret on this one response; it is never shown again."""
    team = identity_selectors.team_get(request.user, slug)
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _team_page(request, team, token_form=form, status=400)
    outcome = run_action(
        request,
        identity_services.token_create,
        form=form,
        team=team,
        name=form.cleaned_data["name"],
        scopes=form.cleaned_data["scopes"],
        expires_at=form.expires_at(),
    )
    if not outcome.ok:
        return _team_page(request, team, token_form=form, status=outcome.status)
    response = render(
        request,
        "frontend/teams/token_created.html",
        {"team": team, "token": outcome.value.token, "secret": outcome.value.secret},
        status=201,
    )
    add_never_cache_headers(response)  # the secret must not sit in any cache or history
    return response


@page("POST")
def token_revoke(request: HttpRequest, slug: str, token_id: int) -> HttpResponse:
    team = identity_selectors.team_get(request.user, slug)
    token = identity_selectors.team_tokens(team).filter(pk=token_id).first()
    if token is None:
        raise Http404(f"team {team.slug} has no token {token_id}")
    outcome = run_action(
        request, identity_services.token_revoke, token=token, success=f"Token {token.name} revoked."
    )
    if outcome.ok:
        return redirect(reverse("team-detail", kwargs={"slug": team.slug}) + "#tokens")
    return _team_page(request, team, status=outcome.status)


# Audit log ------------------------------------------------------------------------------------


@page("GET")
def audit_log(request: HttpRequest) -> HttpResponse:
    filterset = AuditEventFilterSet(
        request.GET or None, queryset=identity_selectors.audit_events(request.user), request=request
    )
    sort, sort_error = list_sort(request, AUDIT_SORTS, "-occurred")
    valid = not filterset.is_bound or filterset.is_valid()
    events = filterset.qs.order_by(*AUDIT_SORTS[sort]) if valid else filterset.queryset.none()
    context = {
        "form": filterset.form,
        "page_obj": _paginate(request, events),
        "sort": sort,
        "sort_error": sort_error,
    }
    status = 200 if valid and not sort_error else 400
    return render(request, "frontend/audit/list.html", context, status=status)
