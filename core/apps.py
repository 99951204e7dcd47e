from django.apps import AppConfig


class CoreConfig(AppConfig):
    """An app only so that Django finds the outbox's abstract model (core.models) and
    Celery its one email task (core.tasks); it has no table of its own."""

    name = "core"
