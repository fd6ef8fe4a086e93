"""Reads of the registry shaped for pages and endpoints, with the joins they need up front so
their query count does not grow with the data."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet

from core.errors import NotFound
from identity.models import AuditEvent
from identity.permissions import Action, require
from identity.selectors import audit_events

from .models import Alias, ModelVersion, RegisteredModel


def model_list(principal: Any) -> QuerySet[RegisteredModel]:
    return (
        RegisteredModel.objects.visible_to(principal)
        .select_related("team")
        .annotate(version_count=Count("versions"))
    )


def model_get(principal: Any, name: str) -> RegisteredModel:
    model = (
        RegisteredModel.objects.visible_to(principal)
        .select_related("team")
        .filter(name=name)
        .first()
    )
    if model is None:
        raise NotFound(f"no model {name!r}", field="model")
    require(principal, Action.MODEL_VIEW, model)
    return model


def version_list(model: RegisteredModel) -> QuerySet[ModelVersion]:
    return (
        model.versions.select_related("model", "created_by", "created_by_token")
        .prefetch_related(Prefetch("aliases", queryset=Alias.objects.only("name", "version_id")))
        .order_by("-number")
    )


def version_get(model: RegisteredModel, number: int | str) -> ModelVersion:
    try:
        number = int(number)
    except (TypeError, ValueError):
        raise NotFound(f"{number!r} is not a version number", field="number") from None
    version = version_list(model).filter(number=number).first()
    if version is None:
        raise NotFound(f"{model.name} has no version {number}", field="number")
    return version


def alias_list(model: RegisteredModel) -> QuerySet[Alias]:
    return model.aliases.select_related("model", "version").order_by("name")


def alias_get(model: RegisteredModel, name: str) -> Alias:
    alias = alias_list(model).filter(name=name).first()
    if alias is None:
        raise NotFound(f"{model.name} has no alias {name!r}", field="alias")
    return alias


def audit_events_for(principal: Any, obj: Any, limit: int = 20) -> list[AuditEvent]:
    """Recent events about an object (a model: also its versions and aliases)."""
    qs = audit_events(principal)
    if isinstance(obj, RegisteredModel):
        version_ids = [str(pk) for pk in obj.versions.values_list("pk", flat=True)]
        alias_ids = [str(pk) for pk in obj.aliases.values_list("pk", flat=True)]
        qs = qs.filter(
            Q(target_type="registry.registeredmodel", target_id=str(obj.pk))
            | Q(target_type="registry.modelversion", target_id__in=version_ids)
            | Q(target_type="registry.alias", target_id__in=alias_ids)
            | Q(action__startswith="alias.", target_label__startswith=f"{obj.name}@")
        )
    else:
        qs = qs.filter(target_type=obj._meta.label_lower, target_id=str(obj.pk))
    return list(qs[:limit])
