"""The deployment page's live part (#deployment-live): what serves now, the active release, the
newest rollback and the traffic; it polls while a release or a rollback is under way and stops
once settled, and an in-place rollback (HTMX post) answers with it. The strategy and the config
read as labelled fields, never as a Python repr."""

from __future__ import annotations

from django.utils import timezone

from deployments import selectors
from deployments.models import Deployment, Rollback, RollbackState
from tests.factories import release_of
from tests.support.pages import html_of

HX = {"HTTP_HX_REQUEST": "true"}
POLL = 'hx-trigger="every 2s"'


def url(deployment: Deployment) -> str:
    return f"/deployments/{deployment.pk}/"


def rollback_url(deployment: Deployment) -> str:
    return f"/deployments/{deployment.pk}/rollback/"


def test_the_strategy_reads_as_labelled_fields_not_a_repr(browser_for, deployment):
    Deployment.objects.filter(pk=deployment.pk).update(
        strategy_params={"steps": [20, 50, 100], "analysis_interval_seconds": 60}
    )
    html = html_of(browser_for("viewer"), url(deployment))
    assert "<dt>Traffic steps</dt><dd>20% → 50% → 100%</dd>" in html
    assert "<dt>Analysis window</dt><dd>60 s (1 min)</dd>" in html
    assert "<dt>Minimum requests per side</dt><dd>100</dd>" in html
    assert "{&#x27;" not in html and "[20, 50, 100]" not in html and "<code>{" not in html


def test_a_key_it_does_not_know_reads_as_name_and_value():
    rows = selectors.strategy_settings({"future_knob": {"level": 2, "on": True}, "steps": "odd"})
    assert [(r.label, r.text) for r in rows] == [
        ("Traffic steps", "odd"),
        ("Future knob", "level: 2; on: yes"),
    ]


def test_blue_green_and_config_settings_read_in_words(browser_for, deployment):
    Deployment.objects.filter(pk=deployment.pk).update(strategy="blue_green", strategy_params={})
    html = html_of(browser_for("viewer"), url(deployment))
    assert "<dt>Previous version kept warm</dt><dd>3600 s (1 h)</dd>" in html
    assert "<dt>Analysis window</dt><dd>none (no canary analysis)</dd>" in html
    assert "<dt>Drift thresholds</dt><dd>warn at 0.1, alert at 0.25</dd>" in html
    assert "<dt>Human review</dt><dd>none (no prediction is reviewed)</dd>" in html


def test_a_settled_deployment_does_not_poll(browser_for, deployment):
    html = html_of(browser_for("viewer"), url(deployment))
    assert 'id="deployment-live"' in html and 'id="deployment-traffic"' in html
    assert POLL not in html
    assert "never rolled back" in html


def test_an_htmx_poll_gets_only_the_live_part_polling_while_a_rollback_is_pending(
    browser_for, deployment, versions
):
    Rollback.objects.create(
        deployment=deployment, from_version=versions[2], to_version=versions[1], actor_label="ann"
    )
    response = browser_for("viewer").get(url(deployment), **HX)
    html = response.content.decode()
    assert response.status_code == 200 and "HX-Request" in response["Vary"]
    assert "<html" not in html and "Recent releases" not in html
    assert 'id="deployment-live"' in html
    assert POLL in html and f'hx-get="{url(deployment)}"' in html
    assert "Rolling back to v1" in html and "asked by ann" in html


def test_once_the_rollback_is_done_the_poll_answer_stops_and_shows_traffic_on_the_target(
    browser_for, deployment, versions
):
    Rollback.objects.create(
        deployment=deployment,
        from_version=versions[2],
        to_version=versions[1],
        actor_label="ann",
        state=RollbackState.DONE,
        completed_at=timezone.now(),
    )
    Deployment.objects.filter(pk=deployment.pk).update(
        stable_version=versions[1], previous_stable_version=None
    )
    html = html_of(browser_for("maintainer"), url(deployment), **HX)
    assert POLL not in html and "hx-get" not in html
    assert "Rolled back to v1 by ann" in html
    assert "<dt>Stable version</dt><dd>v1" in html and "v1 100%" in html
    assert "Roll back to" not in html  # nothing earlier to go back to now


def test_an_active_release_keeps_the_page_polling(browser_for, deployment, versions, people):
    release_of(deployment, versions[3], people["maintainer"])
    html = html_of(browser_for("viewer"), url(deployment), **HX)
    assert POLL in html and "Awaiting approval" in html


def test_an_htmx_rollback_answers_with_the_live_part(
    browser_for, deployment, django_capture_on_commit_callbacks
):
    client = browser_for("maintainer")
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(rollback_url(deployment), {"reason": "error spike"}, **HX)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="deployment-live"' in html and "<html" not in html
    assert "Rolling back to v1" in html and POLL in html
    assert (
        'hx-swap-oob="true"' in html and "Rolling back fraud-detector in production to v1." in html
    )
    assert response["HX-Push-Url"] == url(deployment)
    assert Rollback.objects.get().reason == "error spike"


def test_the_confirmation_posts_in_place_and_falls_back_to_a_plain_post(browser_for, deployment):
    html = html_of(browser_for("maintainer"), rollback_url(deployment))
    assert 'id="rollback-form" method="post"' in html
    assert (
        f'hx-post="{rollback_url(deployment)}"' in html and 'hx-target="#rollback-confirm"' in html
    )
    assert 'id="rollback-confirm-button"' in html


def test_a_viewer_cannot_roll_back_in_place(browser_for, deployment):
    response = browser_for("viewer").post(rollback_url(deployment), {"reason": "x"}, **HX)
    assert response.status_code == 403
    assert not Rollback.objects.exists()


def test_bad_input_in_place_shows_the_confirmation_again(browser_for, deployment):
    response = browser_for("owner").post(rollback_url(deployment), {"reason": "x" * 2001}, **HX)
    html = response.content.decode()
    assert response.status_code == 400
    assert 'id="rollback-confirm"' in html and "<html" not in html and 'class="error"' in html
    assert not Rollback.objects.exists()
