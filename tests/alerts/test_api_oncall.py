"""/api/v1/schedules/ and /api/v1/escalation-policies/: members of the team read them (others get
404), maintainers and owners change them (never a CI token), every change is audited, and bad
input is refused naming the field with nothing written."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.models import (
    EscalationPolicy,
    EscalationStep,
    NotificationChannel,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
)
from alerts.services import channel_create
from core import clock
from core.errors import ValidationFailed
from identity.audit import Actor
from identity.models import AuditEvent
from tests.factories import (
    SYSTEM,
    MembershipFactory,
    UserFactory,
    escalation_policy_of,
    oncall_schedule_of,
)

SCHEDULES = "/api/v1/schedules/"
POLICIES = "/api/v1/escalation-policies/"


def iso(delta_hours: float = 0) -> str:
    return (clock.now() + timedelta(hours=delta_hours)).isoformat()


def layer(*members: str, **fields) -> dict:  # type: ignore[no-untyped-def]
    return {
        "name": "daily",
        "rotation_start": iso(-1),
        "shift_hours": 24,
        "members": list(members),
        **fields,
    }


@pytest.fixture
def schedule(team, people):  # type: ignore[no-untyped-def]
    return oncall_schedule_of(team, [people["owner"], people["maintainer"]], shift_hours=24)


@pytest.fixture
def other_schedule(other_team, people):  # type: ignore[no-untyped-def]
    return oncall_schedule_of(other_team, [people["outsider"]], name="theirs")


# Schedules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "code"),
    [
        ("owner", 201),
        ("maintainer", 201),
        ("admin", 201),
        ("viewer", 403),
        ("token:write", 403),
        ("token:read", 403),
        ("anonymous", 401),
        ("outsider", 404),
    ],
)
def test_who_may_create_a_schedule(client_for, people, who, code):
    body = {
        "team": "fraud",
        "name": "primary",
        "time_zone": "Europe/Paris",
        "layers": [layer("owner", "viewer")],
    }
    response = client_for(who).post(SCHEDULES, body, format="json")
    assert response.status_code == code, response.json()
    assert Schedule.objects.exists() == (code == 201)
    if code == 201:
        created = response.json()
        assert created["time_zone"] == "Europe/Paris"
        assert created["layers"][0]["members"] == ["owner", "viewer"]
        assert AuditEvent.objects.filter(action="schedule.create").count() == 1


def test_a_token_is_told_a_person_decides(client_for):
    response = client_for("token:write").post(
        SCHEDULES, {"team": "fraud", "name": "x"}, format="json"
    )
    assert "a person decides" in response.json()["detail"]


@pytest.mark.parametrize(
    ("who", "visible"),
    [("owner", True), ("viewer", True), ("token:read", True), ("admin", True), ("outsider", False)],
)
def test_members_read_the_teams_schedules(client_for, schedule, other_schedule, who, visible):
    client = client_for(who)
    ids = {row["id"] for row in client.get(SCHEDULES).json()["results"]}
    assert (schedule.pk in ids) == visible
    assert client.get(f"{SCHEDULES}{schedule.pk}/").status_code == (200 if visible else 404)
    on_call = client.get(f"{SCHEDULES}{schedule.pk}/on-call/")
    assert on_call.status_code == (200 if visible else 404)


def test_on_call_shows_now_and_next(client_for, schedule):
    body = client_for("viewer").get(f"{SCHEDULES}{schedule.pk}/on-call/").json()
    assert body["now"]["users"] == ["owner"] and body["now"]["source"] == "layer:weekly"
    assert body["next"]["users"] == ["maintainer"]
    assert body["now"]["end"] == body["next"]["start"]


def test_on_call_at_a_given_time_and_in_a_gap(client_for, schedule):
    client = client_for("viewer")
    later = client.get(f"{SCHEDULES}{schedule.pk}/on-call/", {"at": iso(30)}).json()
    assert later["now"]["users"] == ["maintainer"]
    before = client.get(f"{SCHEDULES}{schedule.pk}/on-call/", {"at": iso(-5)}).json()
    assert before["now"]["is_gap"] and before["now"]["users"] == []
    assert before["next"]["users"] == ["owner"]


@pytest.mark.parametrize(("at", "code"), [("2030-01-01T10:00:00", 400), ("soon", 400)])
def test_on_call_at_a_bad_time_names_it(client_for, schedule, at, code):
    response = client_for("viewer").get(f"{SCHEDULES}{schedule.pk}/on-call/", {"at": at})
    assert response.status_code == code
    assert response.json()["errors"][0]["field"] == "at"


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone", 422),
        ({"time_zone": "../etc/passwd"}, "time_zone", 422),
        ({"name": ""}, "name", 400),
        ({"layers": [layer("owner", "outsider")]}, "layers[0].members[1]", 422),
        ({"layers": [layer("owner", "ghost")]}, "layers[0].members[1]", 422),
        ({"layers": [layer("owner", active_from="09:00")]}, "layers[0].active_until", 422),
        ({"layers": [layer("owner", shift_hours=0)]}, "layers[0].shift_hours", 400),
        ({"layers": [layer("owner", members=[])]}, "layers[0].members", 400),
        (
            {"layers": [layer("owner", rotation_start="2030-01-01T09:00:00")]},
            "layers[0].rotation_start",
            400,
        ),
        ({"layers": [layer("owner", colour="red")]}, "layers[0].colour", 400),
        ({"team": "search"}, "team", 404),
    ],
)
def test_a_bad_schedule_names_the_field_and_writes_nothing(client_for, change, field, code):
    body = {"team": "fraud", "name": "primary", "layers": [layer("owner")], **change}
    response = client_for("owner").post(SCHEDULES, body, format="json")
    assert response.status_code == code, response.json()
    assert response.json()["errors"][0]["field"] == field
    assert not Schedule.objects.exists() and not ScheduleLayer.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="schedule.").exists()


def test_a_second_schedule_of_the_same_name_conflicts(client_for, schedule):
    response = client_for("owner").post(
        SCHEDULES, {"team": "fraud", "name": "primary"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "name"


def test_layers_are_replaced_in_one_call(client_for, schedule):
    body = {"layers": [layer("viewer", name="day"), layer("owner", name="night", position=1)]}
    response = client_for("maintainer").put(
        f"{SCHEDULES}{schedule.pk}/layers/", body, format="json"
    )
    assert response.status_code == 200, response.json()
    assert [(row["name"], row["members"]) for row in response.json()["layers"]] == [
        ("day", ["viewer"]),
        ("night", ["owner"]),
    ]
    assert ScheduleLayer.objects.filter(schedule=schedule).count() == 2
    assert AuditEvent.objects.filter(action="schedule.set_layers").count() == 1


def test_a_bad_layer_leaves_the_old_ones(client_for, schedule):
    body = {"layers": [layer("viewer"), layer("owner", "outsider")]}
    response = client_for("maintainer").put(
        f"{SCHEDULES}{schedule.pk}/layers/", body, format="json"
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "layers[1].members[1]"
    assert list(ScheduleLayer.objects.filter(schedule=schedule).values_list("name", flat=True)) == [
        "weekly"
    ]


def test_an_inactive_member_cannot_join_a_layer(client_for, schedule, team):
    gone = UserFactory(username="gone", is_active=False)
    MembershipFactory(team=team, user=gone)
    body = {"layers": [layer("gone")]}
    response = client_for("owner").put(f"{SCHEDULES}{schedule.pk}/layers/", body, format="json")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "layers[0].members[0]"


def test_a_viewer_cannot_change_a_schedule(client_for, schedule):
    client = client_for("viewer")
    assert (
        client.patch(f"{SCHEDULES}{schedule.pk}/", {"name": "x"}, format="json").status_code == 403
    )
    assert client.delete(f"{SCHEDULES}{schedule.pk}/").status_code == 403
    assert Schedule.objects.get(pk=schedule.pk).name == "primary"


def test_an_outsider_cannot_change_a_schedule(client_for, schedule):
    client = client_for("outsider")
    assert (
        client.patch(f"{SCHEDULES}{schedule.pk}/", {"name": "x"}, format="json").status_code == 404
    )
    assert client.delete(f"{SCHEDULES}{schedule.pk}/").status_code == 404


def test_a_schedule_is_renamed_and_moved_to_a_time_zone(client_for, schedule):
    response = client_for("maintainer").patch(
        f"{SCHEDULES}{schedule.pk}/", {"name": "day", "time_zone": "Asia/Tokyo"}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["time_zone"]) == ("day", "Asia/Tokyo")
    event = AuditEvent.objects.get(action="schedule.update")
    assert event.before["time_zone"] == "UTC" and event.after["time_zone"] == "Asia/Tokyo"


def test_an_override_takes_the_schedule(client_for, schedule):
    client = client_for("maintainer")
    body = {"user": "viewer", "starts_at": iso(-0.5), "ends_at": iso(2), "reason": "swap"}
    response = client.post(f"{SCHEDULES}{schedule.pk}/overrides/", body, format="json")
    assert response.status_code == 201, response.json()
    override_id = response.json()["id"]
    now = client.get(f"{SCHEDULES}{schedule.pk}/on-call/").json()["now"]
    assert now["users"] == ["viewer"] and now["source"] == "override"
    detail = client.get(f"{SCHEDULES}{schedule.pk}/").json()
    assert [o["user"] for o in detail["overrides"]] == ["viewer"]

    gone = client.delete(f"{SCHEDULES}{schedule.pk}/overrides/{override_id}/")
    assert gone.status_code == 204
    assert not ScheduleOverride.objects.exists()
    assert AuditEvent.objects.filter(action__startswith="schedule.override").count() == 2


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"user": "outsider"}, "user", 422),
        ({"ends_at": iso(-1)}, "ends_at", 422),
        ({"starts_at": "2030-01-01T00:00:00"}, "starts_at", 400),
        ({"ends_at": None}, "ends_at", 400),
    ],
)
def test_a_bad_override_names_the_field(client_for, schedule, change, field, code):
    body = {"user": "viewer", "starts_at": iso(0), "ends_at": iso(2), **change}
    response = client_for("owner").post(f"{SCHEDULES}{schedule.pk}/overrides/", body, format="json")
    assert response.status_code == code, response.json()
    assert response.json()["errors"][0]["field"] == field
    assert not ScheduleOverride.objects.exists()


def test_deleting_an_unknown_override_is_not_found(client_for, schedule, other_schedule):
    theirs = ScheduleOverride.objects.create(
        schedule=other_schedule,
        user=other_schedule.layers.get().members.get().user,
        starts_at=clock.now(),
        ends_at=clock.now() + timedelta(hours=1),
    )
    response = client_for("owner").delete(f"{SCHEDULES}{schedule.pk}/overrides/{theirs.pk}/")
    assert response.status_code == 404
    assert ScheduleOverride.objects.filter(pk=theirs.pk).exists()


def test_a_schedule_a_policy_routes_to_cannot_be_deleted(client_for, schedule, team):
    escalation_policy_of(team, [{"target": "schedule", "schedule": schedule.pk}], name="main")
    response = client_for("owner").delete(f"{SCHEDULES}{schedule.pk}/")
    assert response.status_code == 409
    assert "'main'" in response.json()["detail"]
    assert response.json()["errors"][0]["field"] == "schedule"
    assert Schedule.objects.filter(pk=schedule.pk).exists()


def test_an_unused_schedule_is_deleted_with_its_layers(client_for, schedule):
    assert client_for("owner").delete(f"{SCHEDULES}{schedule.pk}/").status_code == 204
    assert not Schedule.objects.exists() and not ScheduleLayer.objects.exists()
    assert AuditEvent.objects.filter(action="schedule.delete").count() == 1


# Escalation policies --------------------------------------------------------------------------


def steps_for(schedule: Schedule) -> list[dict]:
    return [
        {"target": "schedule", "schedule": schedule.pk, "wait_minutes": 10},
        {"target": "user", "user": "maintainer", "wait_minutes": 15},
        {"target": "team_owners"},
    ]


@pytest.mark.parametrize(
    ("who", "code"),
    [
        ("owner", 201),
        ("maintainer", 201),
        ("admin", 201),
        ("viewer", 403),
        ("token:write", 403),
        ("anonymous", 401),
        ("outsider", 404),
    ],
)
def test_who_may_create_a_policy(client_for, schedule, who, code):
    body = {"team": "fraud", "name": "main", "repeat": 2, "steps": steps_for(schedule)}
    response = client_for(who).post(POLICIES, body, format="json")
    assert response.status_code == code, response.json()
    assert EscalationPolicy.objects.exists() == (code == 201)
    if code == 201:
        steps = response.json()["steps"]
        assert [(s["target"], s["schedule_name"], s["user"]) for s in steps] == [
            ("schedule", "primary", None),
            ("user", None, "maintainer"),
            ("team_owners", None, None),
        ]
        assert [s["wait_minutes"] for s in steps] == [10, 15, 15]
        assert AuditEvent.objects.filter(action="escalation_policy.create").count() == 1


@pytest.mark.parametrize(
    ("who", "visible"), [("viewer", True), ("token:read", True), ("outsider", False)]
)
def test_members_read_the_teams_policies(client_for, schedule, team, who, visible):
    policy = escalation_policy_of(team, steps_for(schedule))
    client = client_for(who)
    ids = {row["id"] for row in client.get(POLICIES).json()["results"]}
    assert (policy.pk in ids) == visible
    assert client.get(f"{POLICIES}{policy.pk}/").status_code == (200 if visible else 404)


def test_making_a_policy_the_default_unsets_the_previous_one(client_for, schedule, team):
    first = escalation_policy_of(team, steps_for(schedule), name="first", is_default=True)
    body = {"team": "fraud", "name": "second", "is_default": True, "steps": steps_for(schedule)}
    response = client_for("owner").post(POLICIES, body, format="json")
    assert response.status_code == 201
    assert EscalationPolicy.objects.get(is_default=True).name == "second"
    response = client_for("owner").patch(
        f"{POLICIES}{first.pk}/", {"is_default": True}, format="json"
    )
    assert response.status_code == 200 and response.json()["is_default"] is True
    assert EscalationPolicy.objects.get(is_default=True).pk == first.pk


def test_steps_are_replaced_in_one_call(client_for, schedule, team):
    policy = escalation_policy_of(team, steps_for(schedule))
    response = client_for("maintainer").patch(
        f"{POLICIES}{policy.pk}/", {"steps": [{"target": "team_owners"}]}, format="json"
    )
    assert response.status_code == 200
    assert [s["target"] for s in response.json()["steps"]] == ["team_owners"]
    event = AuditEvent.objects.get(action="escalation_policy.update")
    assert len(event.before["steps"]) == 3 and len(event.after["steps"]) == 1


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"repeat": 11}, "repeat", 400),
        ({"steps": []}, "steps", 422),
        ({"steps": [{"target": "team_owners", "wait_minutes": 0}]}, "steps[0].wait_minutes", 400),
        (
            {"steps": [{"target": "team_owners", "wait_minutes": 1441}]},
            "steps[0].wait_minutes",
            400,
        ),
        ({"steps": [{"target": "pager"}]}, "steps[0].target", 400),
        ({"steps": [{"target": "schedule"}]}, "steps[0].schedule", 422),
        ({"steps": [{"target": "user", "user": "outsider"}]}, "steps[0].user", 422),
        (
            {"steps": [{"target": "team_owners"}, {"target": "user", "schedule": 1}]},
            "steps[1].schedule",
            422,
        ),
        ({"name": " "}, "name", 400),
    ],
)
def test_a_bad_policy_names_the_field_and_writes_nothing(client_for, schedule, change, field, code):
    body = {"team": "fraud", "name": "main", "steps": steps_for(schedule), **change}
    response = client_for("owner").post(POLICIES, body, format="json")
    assert response.status_code == code, response.json()
    assert response.json()["errors"][0]["field"] == field
    assert not EscalationPolicy.objects.exists() and not EscalationStep.objects.exists()


def test_a_step_cannot_route_to_another_teams_schedule(client_for, other_schedule):
    body = {
        "team": "fraud",
        "name": "main",
        "steps": [{"target": "schedule", "schedule": other_schedule.pk}],
    }
    response = client_for("owner").post(POLICIES, body, format="json")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "steps[0].schedule"


def test_a_policy_is_deleted_by_a_maintainer_only(client_for, schedule, team):
    policy = escalation_policy_of(team, steps_for(schedule))
    assert client_for("viewer").delete(f"{POLICIES}{policy.pk}/").status_code == 403
    assert client_for("maintainer").delete(f"{POLICIES}{policy.pk}/").status_code == 204
    assert not EscalationPolicy.objects.exists()
    assert AuditEvent.objects.filter(action="escalation_policy.delete").count() == 1


# Notification channels (service only) ---------------------------------------------------------


@pytest.mark.parametrize(
    "url_env", ["https://hooks.slack.com/services/T000/B000/XXXX", "slack_url", "1URL", ""]
)
def test_a_channel_stores_the_name_of_a_variable_never_a_url(team, url_env):
    with pytest.raises(ValidationFailed) as refused:
        channel_create(actor=SYSTEM, team=team, name="slack", url_env=url_env)
    assert refused.value.field == "url_env"
    assert "hooks.slack.com" not in refused.value.reason
    assert not NotificationChannel.objects.exists()


def test_a_channel_is_created_and_audited(team, people):
    channel = channel_create(
        actor=Actor.from_principal(people["maintainer"]),
        team=team,
        name="slack",
        url_env="ALERTS_SLACK_WEBHOOK_URL",
    )
    assert channel.url_env == "ALERTS_SLACK_WEBHOOK_URL"
    assert AuditEvent.objects.get(action="notification_channel.create").after["url_env"] == (
        "ALERTS_SLACK_WEBHOOK_URL"
    )
