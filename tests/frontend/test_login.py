"""Login, logout, the root redirect and the base layout every page shares."""

from __future__ import annotations

import json
import re
from pathlib import Path

from django.conf import settings
from django.test import Client

import frontend
from tests.support.pages import html_of

REPO = Path(settings.BASE_DIR)


def test_it_shows_the_login_form(db):
    response = Client().get("/login/")
    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert b'name="password"' in response.content
    assert b"csrfmiddlewaretoken" in response.content


def test_it_logs_in_and_lands_on_the_home_page(people):
    client = Client()
    response = client.post("/login/", {"username": "owner", "password": "pw-for-tests-only"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_it_rejects_a_wrong_password(people):
    client = Client()
    response = client.post("/login/", {"username": "owner", "password": "nope"})
    assert response.status_code == 200
    assert b"correct username and password" in response.content
    assert client.get("/models/").status_code == 302


def test_it_sends_anonymous_visitors_to_login(db):
    response = Client().get("/models/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/models/"


def test_it_logs_out_only_by_post(browser_for):
    client = browser_for("viewer")
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert client.get("/models/").status_code == 302


def test_root_is_the_home_page(browser_for):
    html = html_of(browser_for("viewer"), "/")
    assert "What needs you" in html


def test_the_layout_has_a_favicon_and_the_brand_leads_home(browser_for):
    html = html_of(browser_for("viewer"), "/models/")
    assert '<link rel="icon" href="/static/frontend/favicon.svg" type="image/svg+xml">' in html
    assert '<a class="brand" href="/">' in html
    assert '<a href="/">Home</a>' in html


def test_the_layout_has_nav_skip_link_logout_and_an_htmx_csrf_header(browser_for):
    html = html_of(browser_for("viewer"), "/models/")
    assert 'href="#main"' in html and 'id="main"' in html
    for href in ("/models/", "/teams/", "/audit/", "/api/docs/"):
        assert f'href="{href}"' in html
    assert re.search(r'<form method="post" action="/logout/">', html)
    assert re.search(r"hx-headers='\{\"X-CSRFToken\": \"[^\"]+\"\}'", html)
    assert 'aria-current="page">Models' in html


def test_pages_load_no_asset_from_another_host(browser_for):
    html = html_of(browser_for("viewer"), "/models/")
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "/static/frontend/vendor/htmx.min.js" in html


def test_the_vendored_htmx_is_the_version_package_json_pins():
    pinned = json.loads((REPO / "package.json").read_text())["dependencies"]["htmx.org"]
    vendored = (Path(frontend.__file__).parent / "static/frontend/vendor/htmx.min.js").read_text()
    assert f'version:"{pinned}"' in vendored
