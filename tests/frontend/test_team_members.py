"""Adding, changing and removing team members (owners only, through the services)."""

from __future__ import annotations

from identity.models import AuditEvent, Membership
from tests.factories import UserFactory

SET_URL = "/teams/fraud/members/"


def role_of(team, username):  # type: ignore[no-untyped-def]
    return Membership.objects.filter(team=team, user__username=username).first()


def test_an_owner_adds_a_member_with_duties(browser_for, team, people):
    UserFactory(username="newcomer")
    response = browser_for("owner").post(
        SET_URL, {"username": "newcomer", "role": "maintainer", "is_on_call": "on"}
    )
    assert response.status_code == 302
    membership = role_of(team, "newcomer")
    assert (membership.role, membership.is_on_call, membership.is_approver) == (
        "maintainer",
        True,
        False,
    )
    assert AuditEvent.objects.filter(action="membership.set", actor_label="owner").exists()


def test_an_owner_changes_a_role_and_clears_a_duty(browser_for, team, people):
    Membership.objects.filter(user=people["viewer"]).update(is_reviewer=True)
    response = browser_for("owner").post(SET_URL, {"username": "viewer", "role": "maintainer"})
    assert response.status_code == 302
    membership = role_of(team, "viewer")
    assert (membership.role, membership.is_reviewer) == ("maintainer", False)


def test_an_owner_removes_a_member(browser_for, team, people):
    response = browser_for("owner").post("/teams/fraud/members/viewer/remove/")
    assert response.status_code == 302
    assert role_of(team, "viewer") is None


def test_a_maintainer_is_forbidden_and_nothing_is_written(browser_for, team, people):
    UserFactory(username="newcomer")
    client = browser_for("maintainer")
    assert client.post(SET_URL, {"username": "newcomer", "role": "owner"}).status_code == 403
    assert client.post("/teams/fraud/members/viewer/remove/").status_code == 403
    assert role_of(team, "newcomer") is None and role_of(team, "viewer") is not None
    assert not AuditEvent.objects.filter(action__startswith="membership.").exists()


def test_a_viewer_cannot_learn_which_usernames_exist(browser_for, team, people):
    response = browser_for("viewer").post(SET_URL, {"username": "ghost", "role": "viewer"})
    assert response.status_code == 403


def test_an_unknown_username_is_shown_on_the_form(browser_for, team, people):
    response = browser_for("owner").post(SET_URL, {"username": "ghost", "role": "viewer"})
    assert response.status_code == 422
    assert b"no user named &#x27;ghost&#x27;" in response.content
    assert 'value="ghost"' in response.content.decode()  # the form keeps what was typed


def test_bad_input_shows_form_errors_and_writes_nothing(browser_for, team, people):
    response = browser_for("owner").post(SET_URL, {"username": "viewer", "role": "emperor"})
    assert response.status_code == 400
    assert b"Select a valid choice" in response.content
    assert role_of(team, "viewer").role == "viewer"


def test_the_last_owner_cannot_step_down(browser_for, team, people):
    client = browser_for("owner")
    response = client.post(SET_URL, {"username": "owner", "role": "viewer"})
    assert response.status_code == 409
    assert b"a team must keep at least one owner" in response.content
    assert client.post("/teams/fraud/members/owner/remove/").status_code == 409
    assert role_of(team, "owner").role == "owner"


def test_an_outsider_gets_404(browser_for, team, people):
    response = browser_for("outsider").post(SET_URL, {"username": "viewer", "role": "owner"})
    assert response.status_code == 404
    assert role_of(team, "viewer").role == "viewer"


def test_member_forms_reject_get(browser_for, team, people):
    client = browser_for("owner")
    assert client.get(SET_URL).status_code == 405
    assert client.get("/teams/fraud/members/viewer/remove/").status_code == 405
