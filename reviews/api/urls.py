"""Routes of the reviews API under /api/v1/: the callers' endpoints (views: submit, outcome by
reference, appeal) and the reviewers' (queue: the queue, claims, decisions). The reviewers' fixed
paths come first, so that none of them is ever read as an item's reference."""

from django.urls import path

from . import queue, views

urlpatterns = [
    *queue.urlpatterns,
    path("reviews/", views.submit, name="api-review-submit"),
    path("reviews/<str:ref>/", views.outcome, name="api-review-outcome"),
    path("reviews/<str:ref>/appeal", views.appeal, name="api-review-appeal"),
]
