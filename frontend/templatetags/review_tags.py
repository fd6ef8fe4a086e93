"""`{{ user|reviews_somewhere }}`: whether the navigation shows the Reviews link, i.e. whether
the person has the reviewer duty in a team (or reviews everywhere, as a superuser). Asked of
reviews.selectors, which asks identity's permissions: never a rule of its own. It reads the
memberships the request has already loaded for its page (one query at most, none for a
superuser)."""

from __future__ import annotations

from typing import Any

from django import template

from core.errors import Forbidden
from identity.permissions import Action
from reviews.selectors import reviewer_team_ids

register = template.Library()


@register.filter
def reviews_somewhere(user: Any) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    try:
        reviewer_team_ids(user, Action.REVIEW_VIEW)
    except Forbidden:
        return False
    return True
