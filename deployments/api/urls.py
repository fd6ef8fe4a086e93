"""API routes of environments, deployments and releases, mounted under /api/v1/."""

from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("environments", views.EnvironmentViewSet, basename="environment")
router.register("deployments", views.DeploymentViewSet, basename="deployment")
router.register("releases", views.ReleaseViewSet, basename="release")

urlpatterns = router.urls
