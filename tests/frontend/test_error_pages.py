"""Error pages that help (DEBUG is off in the tests, so Django's handlers render ours): each says
what happened and leads home; the 403 names the permission refused; the 500 renders with no
request, no context processor and no database."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.test import RequestFactory
from django.views import defaults

from tests.support.pages import html_of


def test_debug_is_off_so_the_handlers_answer(settings):
    assert settings.DEBUG is False


def test_a_missing_page_says_so_and_leads_home(browser_for):
    html = html_of(browser_for("viewer"), "/no-such-page/", status=404)
    assert "Page not found" in html and "/no-such-page/" in html
    assert 'href="/"' in html and "Go to your home page" in html
    assert 'aria-label="Main"' in html  # the layout, with its navigation


def test_a_missing_object_says_which(browser_for):
    html = html_of(browser_for("viewer"), "/releases/999999/", status=404)
    assert "no release 999999" in html


def test_a_page_not_found_offers_the_way_back_it_came_from(browser_for):
    html = html_of(
        browser_for("viewer"), "/gone/", status=404, HTTP_REFERER="http://testserver/models/"
    )
    assert '<a href="http://testserver/models/">Go back</a>' in html


def test_a_refusal_names_the_permission_lacking(rf, people):
    request = rf.get("/anything/")
    request.user = people["viewer"]
    response = defaults.permission_denied(
        request, PermissionDenied("the author of a release cannot approve or reject it")
    )
    html = response.content.decode()
    assert response.status_code == 403
    assert "You may not do this" in html
    assert "the author of a release cannot approve or reject it" in html
    assert 'href="/"' in html


def test_a_refusal_without_a_reason_still_explains(rf, people):
    request = rf.get("/anything/")
    request.user = people["viewer"]
    response = defaults.permission_denied(request, PermissionDenied())
    assert response.status_code == 403
    assert "lacks the permission this page needs" in response.content.decode()


def test_a_bad_request_says_nothing_changed(client, db):
    response = client.get("/", HTTP_HOST="evil.example")  # not in ALLOWED_HOSTS
    html = response.content.decode()
    assert response.status_code == 400
    assert "The request was not understood" in html and "Nothing was changed" in html
    assert 'href="/"' in html


def test_the_bad_request_handler_renders_alone():
    response = defaults.bad_request(RequestFactory().get("/"), SuspiciousOperation("x"))
    assert response.status_code == 400
    assert "The request was not understood" in response.content.decode()


def test_a_server_error_renders_without_a_database():
    # No `db` fixture: pytest-django fails any query this would make.
    response = defaults.server_error(RequestFactory().get("/"))
    html = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in html
    assert 'href="/"' in html and "favicon.svg" in html


def test_a_crashing_page_answers_with_the_500_page(browser_for, monkeypatch):
    from frontend import home_views

    def crash(user):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    monkeypatch.setattr(home_views, "_alerts", crash)
    client = browser_for("viewer")
    client.raise_request_exception = False
    response = client.get("/")
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()
