"""Identity and audit tables: teams and memberships, CI tokens, idempotency records and the
append-only audit log; and the one door to every row a team owns (`visible_to`). Each team-owned
model names the path to its team once, in `team_path`, and both that door and
`permissions.team_id_of` read it. Writes happen in services.py and audit.py, never here."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from .principals import is_superuser, is_token


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    MAINTAINER = "maintainer", "Maintainer"
    VIEWER = "viewer", "Viewer"


# Rank of each role: a higher rank may do everything a lower one may.
ROLE_RANK: dict[str, int] = {Role.VIEWER: 1, Role.MAINTAINER: 2, Role.OWNER: 3}


class TokenScope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write"


# A CI token acts with its team's rights only, capped by its scopes: never an owner.
TOKEN_SCOPE_ROLE: dict[str, str] = {TokenScope.READ: Role.VIEWER, TokenScope.WRITE: Role.MAINTAINER}


def team_memberships(principal: Any) -> dict[int, dict[str, Any]]:
    """team id -> {"role", "is_approver", "is_on_call", "is_reviewer"} for this principal,
    loaded once per principal object (one query)."""
    if principal is None or not getattr(principal, "is_authenticated", False):
        return {}
    cached = getattr(principal, "_modelplane_team_roles", None)
    if cached is not None:
        return cached
    memberships: dict[int, dict[str, Any]] = {}
    if is_token(principal):
        token = principal.token
        ranks = [ROLE_RANK[TOKEN_SCOPE_ROLE[s]] for s in token.scopes if s in TOKEN_SCOPE_ROLE]
        if ranks:
            best = max(ranks)
            role = next(r for r, n in ROLE_RANK.items() if n == best)
            memberships = {token.team_id: {"role": role}}
    else:
        rows = Membership.objects.filter(user=principal).values(
            "team_id", "role", "is_approver", "is_on_call", "is_reviewer"
        )
        memberships = {row.pop("team_id"): row for row in rows}
    principal._modelplane_team_roles = memberships
    return memberships


def team_roles(principal: Any) -> dict[int, str]:
    """team id -> role for this principal."""
    return {team_id: m["role"] for team_id, m in team_memberships(principal).items()}


def forget_roles(principal: Any) -> None:
    """Drop the cached roles (after a membership change in the same request)."""
    if hasattr(principal, "_modelplane_team_roles"):
        del principal._modelplane_team_roles


def visible_team_ids(principal: Any) -> set[int] | None:
    """Teams whose objects this principal may read; None means all (superusers, the system)."""
    if principal is None:
        return None  # the system itself (workers, management commands)
    if is_superuser(principal):
        return None
    return set(team_roles(principal))


class TeamScopedQuerySet(models.QuerySet):
    """The one door to rows that belong to a team: `visible_to(principal)` keeps the rows of the
    teams the principal may read. The path to the team is the model's `team_path`."""

    def visible_to(self, principal: Any) -> TeamScopedQuerySet:
        team_ids = visible_team_ids(principal)
        if team_ids is None:
            return self
        return self.filter(**{f"{self.model.team_path}__in": team_ids})


class Team(models.Model):
    team_path = "pk"

    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        db_table = "registry_team"  # created by the registry app before identity existed
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    """A user's role in a team, plus the duties that are not a rank (approving, on-call,
    reviewing) and that later issues route work by."""

    team_path = "team_id"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    is_approver = models.BooleanField(default=False)
    is_on_call = models.BooleanField(default=False)
    is_reviewer = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "registry_membership"
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="uniq_membership_team_user")
        ]
        ordering = ["team__slug", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} as {self.role}"


class ApiTokenQuerySet(TeamScopedQuerySet):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


class ApiToken(models.Model):
    """A team's CI credential. The secret is shown once at creation; only its SHA-256 is kept
    (the secret is 256 random bits, so a fast hash is enough, as GitHub does)."""

    team_path = "team_id"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        db_table = "registry_apitoken"
        ordering = ["team__slug", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="uniq_token_name_per_team")
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class IdempotencyRecord(models.Model):
    """The first answer to a POST carrying an Idempotency-Key, replayed for retries."""

    principal = models.CharField(max_length=100)
    key = models.CharField(max_length=200)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    body_sha256 = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "registry_idempotencyrecord"
        constraints = [
            models.UniqueConstraint(fields=["principal", "key"], name="uniq_idempotency_key")
        ]

    def __str__(self) -> str:
        return f"{self.principal} {self.key}"


class ActorType(models.TextChoices):
    USER = "user", "User"
    TOKEN = "token", "API token"
    SYSTEM = "system", "System"


class AuditEvent(models.Model):
    """Append-only record of a state change. On PostgreSQL a trigger refuses UPDATE and DELETE;
    never holds secrets (token values, passwords): only names and references."""

    team_path = "team_id"

    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100)
    target_id = models.CharField(max_length=64)
    target_label = models.CharField(max_length=300)
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    remote_addr = models.CharField(max_length=64, blank=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        db_table = "registry_auditevent"  # the append-only trigger is on this table
        ordering = ["-occurred_at", "-id"]
        # Named as when the table was created in the registry app (kept across the move).
        indexes = [
            models.Index(
                fields=["target_type", "target_id"], name="registry_au_target__e499dd_idx"
            ),
            # The audit log page, newest first: a page (or a deep page's ids) is read from the
            # index in its order without a sort, team_id included for `visible_to`.
            models.Index(fields=["-occurred_at", "-id"], include=["team"], name="audit_recent"),
        ]

    def __str__(self) -> str:
        when = f"{self.occurred_at:%Y-%m-%d %H:%M:%S}"
        return f"{when} {self.actor_label} {self.action} {self.target_label}"
