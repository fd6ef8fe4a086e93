"""Project package: settings, URLs, the Celery app and the cross-app plumbing (errors, audit
context, API auth). It never holds business rules of a domain."""

from .celery import app as celery_app

__all__ = ["celery_app"]
