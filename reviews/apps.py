"""The reviews app's Django configuration; it must never run code at import or start-up."""

from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Human review queues"
