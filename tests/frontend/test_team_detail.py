"""The team page: members with roles and duties, tokens, and owner-only forms."""

from __future__ import annotations

from identity.models import Membership
from tests.factories import make_token
from tests.support.pages import html_of


def test_it_shows_members_roles_duties_and_tokens(browser_for, team, people):
    Membership.objects.filter(user=people["maintainer"]).update(is_on_call=True, is_approver=True)
    token, secret = make_token(team, ["read"], name="github-actions")
    response = browser_for("viewer").get("/teams/fraud/")
    html = response.content.decode()
    assert response.status_code == 200
    for name in ("owner", "maintainer", "viewer"):
        assert f"<td>{name}</td>" in html
    assert (
        '<span class="tag">on call</span>' in html and '<span class="tag">approver</span>' in html
    )
    assert "github-actions" in html and f"<code>{token.prefix}…</code>" in html
    assert secret not in html


def test_a_viewer_sees_no_owner_forms(browser_for, team, people):
    make_token(team, ["read"])
    html = html_of(browser_for("viewer"), "/teams/fraud/")
    for owner_only in ("Add member", "Create token", "Revoke", "Remove"):
        assert owner_only not in html


def test_an_owner_sees_the_owner_forms(browser_for, team, people):
    make_token(team, ["read"])
    html = html_of(browser_for("owner"), "/teams/fraud/")
    for owner_only in ("Add member", "Create token", "Revoke", "Remove"):
        assert owner_only in html


def test_an_outsider_gets_404(browser_for, team, people):
    assert browser_for("outsider").get("/teams/fraud/").status_code == 404


def test_it_rejects_post(browser_for, team, people):
    assert browser_for("owner").post("/teams/fraud/").status_code == 405
