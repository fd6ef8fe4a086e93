"""Routes of the portal pages (filled in as the pages land)."""

urlpatterns: list = []
