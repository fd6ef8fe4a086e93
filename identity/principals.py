"""Who a request acts as, besides a Django user: a team's CI token. Plain objects with no
database access, so that every layer (models, permissions, audit) can ask `is_token()`."""

from __future__ import annotations

from typing import Any


class TokenPrincipal:
    """What `request.user` is for a request authenticated by a CI token."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_superuser = False
    is_staff = False
    pk = None
    id = None

    def __init__(self, token: Any):
        self.token = token

    def __str__(self) -> str:
        return f"token:{self.token.prefix}"

    @property
    def username(self) -> str:
        return str(self)


def is_token(principal: Any) -> bool:
    return isinstance(principal, TokenPrincipal)


def is_superuser(principal: Any) -> bool:
    return bool(getattr(principal, "is_superuser", False)) and not is_token(principal)
