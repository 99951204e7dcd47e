"""Periodic housekeeping for accounts. Tasks are thin: they call plain functions."""

from celery import shared_task
from django.utils import timezone

from accounts.models import UserSession


def clear_expired_sessions(now=None):
    """Delete sessions past their expiry. Idempotent; safe to run concurrently."""
    deleted, _ = UserSession.objects.filter(expire_date__lt=now or timezone.now()).delete()
    return deleted


@shared_task(name="accounts.tasks.clear_expired_sessions")
def clear_expired_sessions_task():
    return clear_expired_sessions()
