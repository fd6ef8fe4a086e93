"""Reads of teams, members, tokens and the audit log, shaped for pages and endpoints."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from core.errors import NotFound

from .models import ApiToken, AuditEvent, Membership, Team


def teams_visible(principal: Any) -> QuerySet[Team]:
    return Team.objects.visible_to(principal)


def team_get(principal: Any, slug: str) -> Team:
    team = teams_visible(principal).filter(slug=slug).first()
    if team is None:
        raise NotFound(f"no team {slug!r}", field="team")
    return team


def team_members(team: Team) -> QuerySet[Membership]:
    return team.memberships.select_related("user").order_by("user__username")


def team_tokens(team: Team) -> QuerySet[ApiToken]:
    return team.tokens.select_related("team").order_by("-created_at")


def audit_events(principal: Any) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.visible_to(principal)
