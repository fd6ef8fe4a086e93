"""Routes of the portal pages. Names are what templates, settings (LOGIN_URL="login",
LOGIN_REDIRECT_URL="home") and later apps link to; never rename one without its users."""

from django.contrib.auth import views as auth_views
from django.urls import path

from . import alert_views, deployment_views, home_views, monitoring_views, review_views, views

urlpatterns = [
    path("", home_views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="frontend/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("models/", views.model_list, name="models"),
    path("models/<slug:name>/", views.model_detail, name="model-detail"),
    path(
        "models/<slug:name>/aliases/<slug:alias>/delete/",
        views.alias_delete,
        name="alias-delete",
    ),
    path(
        "models/<slug:name>/versions/<int:number>/",
        views.version_detail,
        name="version-detail",
    ),
    path("teams/", views.team_list, name="teams"),
    path("teams/<slug:slug>/", views.team_detail, name="team-detail"),
    path("teams/<slug:slug>/members/", views.member_set, name="team-member-set"),
    path(
        "teams/<slug:slug>/members/<str:username>/remove/",
        views.member_remove,
        name="team-member-remove",
    ),
    path("teams/<slug:slug>/tokens/", views.token_create, name="team-token-create"),
    path(
        "teams/<slug:slug>/tokens/<int:token_id>/revoke/",
        views.token_revoke,
        name="team-token-revoke",
    ),
    path("audit/", views.audit_log, name="audit-log"),
    # Deployments, releases and rollbacks (frontend/deployment_views.py).
    path("deployments/", deployment_views.deployment_overview, name="deployments"),
    path("deployments/<int:pk>/", deployment_views.deployment_detail, name="deployment-detail"),
    path(
        "deployments/<int:pk>/configs/",
        deployment_views.deployment_configs,
        name="deployment-configs",
    ),
    path(
        "deployments/<int:pk>/rollback/",
        deployment_views.deployment_rollback,
        name="deployment-rollback",
    ),
    path("deployments/<int:pk>/releases/", deployment_views.release_start, name="release-start"),
    path("releases/", deployment_views.release_list, name="releases"),
    path("releases/<int:pk>/", deployment_views.release_detail, name="release-detail"),
    path(
        "releases/<int:pk>/<slug:verb>/",
        deployment_views.release_action,
        name="release-action",
    ),
]

urlpatterns += [
    path("monitoring/", monitoring_views.monitoring_overview, name="monitoring"),
    path(
        "deployments/<int:pk>/monitoring/",
        monitoring_views.deployment_monitoring,
        name="deployment-monitoring",
    ),
]

# Alerts, on-call and incidents (frontend/alert_views.py).
urlpatterns += [
    path("alerts/", alert_views.alert_list, name="alerts"),
    path("alerts/<int:pk>/", alert_views.alert_detail, name="alert-detail"),
    path("alerts/<int:pk>/<slug:verb>/", alert_views.alert_action, name="alert-action"),
    path("oncall/", alert_views.schedule_list, name="schedules"),
    path("oncall/schedules/<int:pk>/", alert_views.schedule_detail, name="schedule-detail"),
    path("oncall/policies/", alert_views.policy_list, name="escalation-policies"),
    path("incidents/", alert_views.incident_list, name="incidents"),
    path("incidents/<int:pk>/", alert_views.incident_detail, name="incident-detail"),
    path("incidents/<int:pk>/<slug:verb>/", alert_views.incident_action, name="incident-action"),
]

# Human review queues (frontend/review_views.py). "next/" before the item: a ref never reads
# "next" (refs start with "rv_").
urlpatterns += [
    path("reviews/", review_views.review_queue, name="reviews"),
    path("reviews/next/", review_views.review_take_next, name="review-take-next"),
    path("reviews/<slug:ref>/", review_views.review_detail, name="review-detail"),
    path("reviews/<slug:ref>/<slug:verb>/", review_views.review_action, name="review-action"),
]
