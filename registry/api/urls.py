from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("models", views.ModelViewSet, basename="model")
router.register(
    r"models/(?P<model_name>[-a-zA-Z0-9_]+)/versions", views.VersionViewSet, basename="version"
)

alias_list = views.AliasViewSet.as_view({"get": "list"})
alias_detail = views.AliasViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"})

urlpatterns = [
    path("models/<slug:model_name>/aliases/", alias_list, name="alias-list"),
    path("models/<slug:model_name>/aliases/<slug:alias>/", alias_detail, name="alias-detail"),
    *router.urls,
]
