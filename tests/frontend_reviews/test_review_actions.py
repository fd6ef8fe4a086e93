"""POST /reviews/<ref>/<verb>/: claim, release and decide (confirm, or override with the
corrected output) through reviews.claims and reviews.decisions; refusals re-render the item page
with the error on the field at 4xx and change nothing. An appeal goes to a different reviewer
than the one who decided: the page refuses a forced POST of the first decider with that reason."""

from __future__ import annotations

import logging

import pytest

from identity.audit import Actor
from reviews import appeals
from reviews.models import ReviewEventKind, ReviewItem
from tests.factories import decided_item_of, queued_item_of
from tests.support.pages import html_of

APPEAL_REFUSAL = "an appeal goes to a different reviewer than the one who decided"


def act(item: ReviewItem, verb: str) -> str:
    return f"/reviews/{item.ref}/{verb}/"


def kinds(item: ReviewItem) -> list[str]:
    return list(item.events.order_by("created_at", "id").values_list("kind", flat=True))


def fresh(item: ReviewItem) -> ReviewItem:
    return ReviewItem.objects.get(pk=item.pk)


def appealed_by(deployment, decider) -> ReviewItem:  # type: ignore[no-untyped-def]
    done = decided_item_of(deployment, decider)
    appeals.appeal(actor=Actor.system("tests"), item=done, statement="Please look again.")
    return fresh(done)


# Claim and release ----------------------------------------------------------------------------


def test_a_reviewer_claims_an_item(browser_as, rita, item):
    client = browser_as(rita)
    response = client.post(act(item, "claim"))
    assert response.status_code == 302 and response["Location"] == f"/reviews/{item.ref}/"
    item = fresh(item)
    assert item.status == "claimed" and item.claimed_by == rita
    html = html_of(client, response["Location"])
    assert f"You hold {item.ref}" in html and "<strong>you</strong> until" in html
    assert f'action="/reviews/{item.ref}/release/"' in html


def test_a_claim_someone_else_holds_is_refused(browser_as, rita, rob, item):
    browser_as(rob).post(act(item, "claim"))
    response = browser_as(rita).post(act(item, "claim"))
    assert response.status_code == 409
    assert "rob holds the item until" in response.content.decode()
    assert fresh(item).claimed_by == rob


def test_the_holder_releases_the_claim(browser_as, rita, item):
    client = browser_as(rita)
    client.post(act(item, "claim"))
    response = client.post(act(item, "release"), {"reason": "need a colleague's eye"})
    assert response.status_code == 302 and response["Location"] == "/reviews/"
    item = fresh(item)
    assert item.status == "pending" and item.claimed_by is None
    assert kinds(item)[-1] == ReviewEventKind.RELEASED
    assert f"{item.ref} is back in the queue." in html_of(client, "/reviews/")


def test_releasing_what_one_does_not_hold_is_refused(browser_as, rita, item):
    response = browser_as(rita).post(act(item, "release"))
    assert response.status_code == 409
    assert fresh(item).status == "pending"


# Decide ---------------------------------------------------------------------------------------


def test_a_reviewer_claims_and_confirms(browser_as, rita, item):
    client = browser_as(rita)
    client.post(act(item, "claim"))
    response = client.post(
        act(item, "decide"), {"decision": "confirm", "output": "approved", "reason": "fits"}
    )
    assert response.status_code == 302 and response["Location"] == f"/reviews/{item.ref}/"
    item = fresh(item)
    assert item.status == "decided" and item.decision == "confirm"
    assert item.final_output == item.prediction and item.decided_by == rita
    html = html_of(client, response["Location"])
    assert f"You confirmed the prediction of {item.ref}." in html
    assert "<strong>Decided</strong> by rita" in html
    assert kinds(item)[-2:] == [ReviewEventKind.CLAIMED, ReviewEventKind.DECIDED]


def test_a_reviewer_overrides_with_one_of_the_models_classes(browser_as, rita, item):
    client = browser_as(rita)
    response = client.post(
        act(item, "decide"),
        {"decision": "override", "output": "approved", "reason": "income was misread"},
    )
    assert response.status_code == 302
    item = fresh(item)
    assert item.decision == "override" and item.final_output == {"label": "approved"}
    assert item.decision_reason == "income was misread"
    assert f"You overrode the prediction of {item.ref}." in html_of(client, f"/reviews/{item.ref}/")


def test_an_override_of_a_prediction_without_classes_takes_json(browser_as, rita, deployment):
    scored = queued_item_of(deployment, prediction={"score": 712.5})
    response = browser_as(rita).post(
        act(scored, "decide"),
        {"decision": "override", "output": '{"score": 640}', "reason": "debt left out"},
    )
    assert response.status_code == 302
    assert fresh(scored).final_output == {"score": 640}


def test_an_override_without_the_corrected_output_is_refused_on_its_field(browser_as, rita, item):
    response = browser_as(rita).post(
        act(item, "decide"), {"decision": "override", "output": "", "reason": "wrong"}
    )
    html = response.content.decode()
    assert response.status_code == 422
    assert 'id="id_output_error">an override needs the corrected output' in html
    item = fresh(item)
    assert item.status == "pending" and item.decision == "" and kinds(item) == []


def test_json_that_does_not_parse_is_bad_input(browser_as, rita, deployment):
    scored = queued_item_of(deployment, prediction={"score": 712.5})
    response = browser_as(rita).post(
        act(scored, "decide"), {"decision": "override", "output": "{score: 1", "reason": "x"}
    )
    assert response.status_code == 400
    assert 'id="id_output_error">is not valid JSON' in response.content.decode()
    assert fresh(scored).status == "pending"


def test_a_decision_without_a_reason_is_refused_on_its_field(browser_as, rita, item):
    response = browser_as(rita).post(act(item, "decide"), {"decision": "confirm", "reason": " "})
    assert response.status_code == 422
    assert 'id="id_reason_error">say why you decide so' in response.content.decode()
    assert fresh(item).status == "pending"


def test_a_decision_must_be_chosen(browser_as, rita, item):
    response = browser_as(rita).post(act(item, "decide"), {"reason": "fits"})
    assert response.status_code == 400
    assert 'id="id_decision_error"' in response.content.decode()


def test_deciding_over_someone_elses_claim_is_refused(browser_as, rita, rob, item):
    browser_as(rob).post(act(item, "claim"))
    response = browser_as(rita).post(act(item, "decide"), {"decision": "confirm", "reason": "ok"})
    assert response.status_code == 409
    assert fresh(item).status == "claimed"


# The appeal goes to another reviewer ----------------------------------------------------------


def test_the_first_decider_is_refused_a_forced_decision_on_the_appeal(browser_as, rob, deployment):
    appealed = appealed_by(deployment, rob)
    response = browser_as(rob).post(
        act(appealed, "decide"), {"decision": "confirm", "reason": "I stand by it"}
    )
    html = response.content.decode()
    assert response.status_code == 403
    assert APPEAL_REFUSAL in html
    assert f'action="/reviews/{appealed.ref}/decide/"' not in html
    appealed = fresh(appealed)
    assert appealed.status == "pending" and appealed.decided_by is None


def test_the_first_decider_is_refused_a_forced_claim_on_the_appeal(browser_as, rob, deployment):
    appealed = appealed_by(deployment, rob)
    response = browser_as(rob).post(act(appealed, "claim"))
    assert response.status_code == 403 and APPEAL_REFUSAL in response.content.decode()
    assert fresh(appealed).status == "pending"


def test_another_reviewer_decides_the_appeal_and_it_is_final(browser_as, rita, rob, deployment):
    appealed = appealed_by(deployment, rob)
    client = browser_as(rita)
    response = client.post(
        act(appealed, "decide"),
        {"decision": "override", "output": "approved", "reason": "the statement holds"},
    )
    assert response.status_code == 302
    appealed = fresh(appealed)
    assert appealed.level == 2 and appealed.decided_by == rita
    assert appealed.first_decided_by == rob and appealed.final_output == {"label": "approved"}
    assert "This decision is final." in html_of(client, response["Location"])


# Who may act ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verb", "data"),
    [("claim", {}), ("release", {}), ("decide", {"decision": "confirm", "reason": "ok"})],
)
def test_a_member_without_the_duty_is_refused_and_nothing_changes(browser_for, item, verb, data):
    assert browser_for("owner").post(act(item, verb), data).status_code == 403
    assert fresh(item).status == "pending" and kinds(item) == []


@pytest.mark.parametrize("verb", ["claim", "release", "decide"])
def test_another_teams_reviewer_gets_404(browser_as, oscar, item, verb):
    response = browser_as(oscar).post(act(item, verb), {"decision": "confirm", "reason": "ok"})
    assert response.status_code == 404
    assert fresh(item).status == "pending"


def test_an_unknown_verb_is_not_found(browser_as, rita, item):
    assert browser_as(rita).post(act(item, "approve")).status_code == 404


def test_actions_answer_only_posts(browser_as, rita, item):
    assert browser_as(rita).get(act(item, "decide")).status_code == 405


def test_anonymous_is_sent_to_login(client, item):
    response = client.post(act(item, "claim"))
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert fresh(item).status == "pending"


def test_the_input_summary_never_reaches_the_logs(browser_as, rita, item, caplog):
    caplog.set_level(logging.DEBUG)
    client = browser_as(rita)
    client.get(f"/reviews/{item.ref}/")
    client.post(act(item, "decide"), {"decision": "override", "output": "", "reason": "x"})
    client.post(act(item, "decide"), {"decision": "override", "output": "approved", "reason": "x"})
    assert "52000" not in caplog.text and "north" not in caplog.text
