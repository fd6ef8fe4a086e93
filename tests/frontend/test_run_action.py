"""The one page helper around services: errors become messages and form errors, with nothing
written; the `page` decorator maps selector errors and rolls the request back."""

from __future__ import annotations

import pytest
from django import forms
from django.contrib.messages import get_messages
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponse
from django.test import RequestFactory

from core.errors import Conflict, Forbidden, NotFound
from frontend.views import page, run_action
from identity.models import Team


class NameForm(forms.Form):
    name = forms.CharField()


@pytest.fixture
def request_as(people):  # type: ignore[no-untyped-def]
    def make(who: str, method: str = "post"):  # type: ignore[no-untyped-def]
        request = getattr(RequestFactory(), method)("/somewhere/")
        request.user = people[who]
        request._messages = CookieStorage(request)
        return request

    return make


def write_then_refuse(*, actor, slug: str) -> None:  # type: ignore[no-untyped-def]
    Team.objects.create(slug=slug, name=slug)  # not atomic on purpose
    raise Conflict(f"{slug} clashes", field="name")


def test_it_returns_the_service_value_and_a_success_message(request_as):
    request = request_as("owner")
    outcome = run_action(request, lambda *, actor, x: (actor.label, x), x=5, success="Done.")
    assert outcome.ok and outcome.status == 200
    assert outcome.value == ("owner", 5)
    assert [str(m) for m in get_messages(request)] == ["Done."]


def test_a_domain_error_becomes_a_message_a_field_error_and_no_write(request_as):
    request = request_as("owner")
    form = NameForm({"name": "x"})
    assert form.is_valid()
    outcome = run_action(request, write_then_refuse, form=form, slug="ghost-team")
    assert not outcome.ok and outcome.status == 409
    assert form.errors == {"name": ["ghost-team clashes"]}
    assert [str(m) for m in get_messages(request)] == ["Conflict: name ghost-team clashes"]
    assert not Team.objects.filter(slug="ghost-team").exists()  # even though fn was not atomic


def test_an_error_on_a_field_the_form_lacks_is_a_form_wide_error(request_as):
    form = NameForm({"name": "x"})
    form.is_valid()

    def refuse(*, actor):  # type: ignore[no-untyped-def]
        raise Forbidden("You may not.")

    outcome = run_action(request_as("viewer"), refuse, form=form)
    assert outcome.status == 403
    assert form.non_field_errors() == ["You may not."]


def test_a_failed_action_rolls_back_the_whole_request(request_as, db):
    @page("POST")
    def view(request):  # type: ignore[no-untyped-def]
        Team.objects.create(slug="written-first", name="first")
        run_action(request, write_then_refuse, slug="ghost-team")
        return HttpResponse(status=409)

    with transaction.atomic():  # what ATOMIC_REQUESTS wraps a view in
        assert view(request_as("owner")).status_code == 409
    assert not Team.objects.filter(slug__in=["written-first", "ghost-team"]).exists()


def test_selector_errors_become_404_and_403(request_as):
    @page("GET")
    def missing(request):  # type: ignore[no-untyped-def]
        raise NotFound("no model 'x'")

    @page("GET")
    def forbidden(request):  # type: ignore[no-untyped-def]
        raise Forbidden("no")

    with pytest.raises(Http404):
        missing(request_as("owner", "get"))
    with pytest.raises(PermissionDenied):
        forbidden(request_as("owner", "get"))


def test_a_page_answers_only_its_methods(request_as):
    @page("POST")
    def view(request):  # type: ignore[no-untyped-def]
        return HttpResponse()

    assert view(request_as("owner", "get")).status_code == 405
    assert view(request_as("owner", "post")).status_code == 200
