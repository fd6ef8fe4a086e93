"""factory_boy factories for the registry (and, as they arrive, deployments)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from identity.models import ApiToken, Membership, Team
from registry.models import ModelVersion, RegisteredModel

INPUT_SCHEMA = {
    "type": "object",
    "properties": {"age": {"type": "number", "minimum": 0}, "plan": {"enum": ["basic", "pro"]}},
    "required": ["age", "plan"],
    "additionalProperties": False,
}


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password("pw-for-tests-only")


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"team-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    team = factory.SubFactory(TeamFactory)
    user = factory.SubFactory(UserFactory)
    role = "viewer"


class RegisteredModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RegisteredModel

    name = factory.Sequence(lambda n: f"model-{n}")
    team = factory.SubFactory(TeamFactory)
    risk_tier = "medium"


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion
        skip_postgeneration_save = True

    model = factory.SubFactory(RegisteredModelFactory)
    number = factory.Sequence(lambda n: n + 1)
    artifact_uri = factory.LazyAttribute(lambda o: f"s3://artifacts/{o.model.name}/{o.number}.mpkg")
    artifact_digest = factory.LazyAttribute(
        lambda o: "sha256:" + hashlib.sha256(f"{o.model.name}-{o.number}".encode()).hexdigest()
    )
    input_schema = factory.LazyFunction(lambda: dict(INPUT_SCHEMA))

    @factory.post_generation
    def bump_counter(self, create, extracted, **kwargs):  # type: ignore[no-untyped-def]
        if create and self.model.last_version_number < self.number:
            RegisteredModel.objects.filter(pk=self.model_id).update(last_version_number=self.number)
            self.model.last_version_number = self.number


def make_token(
    team: Team,
    scopes: list[str],
    *,
    name: str | None = None,
    expires_in: timedelta = timedelta(days=30),
) -> tuple[ApiToken, str]:
    """A real token through the service (so hashing is the real one); returns (token, secret)."""
    from identity.audit import Actor
    from identity.services import token_create

    issued = token_create(
        actor=Actor.system("tests"),
        team=team,
        name=name or f"ci-{ApiToken.objects.count() + 1}",
        scopes=scopes,
        expires_at=timezone.now() + expires_in,
    )
    return issued.token, issued.secret
