"""Routes of the reviews API under /api/v1/: the callers' endpoints (views: submit, outcome by
reference, appeal) and the reviewers' (queue: the queue, claims, decisions). The reviewers' fixed
paths come first, so that none of them is ever read as an item's reference."""

from importlib.util import find_spec

from django.urls import path

from . import views

urlpatterns: list = []
# The reviewers' endpoints are written alongside (reviews/api/queue.py); until that module
# exists, the callers' endpoints stand alone. Looked up by spec, not by catching ImportError,
# so that a real error inside queue.py still fails loudly.
if find_spec(f"{__package__}.queue") is not None:
    from . import queue

    urlpatterns += queue.urlpatterns

urlpatterns += [
    path("reviews/", views.submit, name="review-submit"),
    path("reviews/<str:ref>/", views.outcome, name="review-outcome"),
    path("reviews/<str:ref>/appeal", views.appeal, name="review-appeal"),
]
