"""Periodic security jobs. Thin tasks: each calls a plain function the tests call too."""

from celery import shared_task
from django.db.models import Q
from django.utils import timezone

from security import inactivity, rotation
from security.lockouts import IN_FLIGHT_EXPIRY, LIMITS
from security.models import LoginThrottle


@shared_task(name="security.tasks.deactivate_inactive_users")
def deactivate_inactive_users_task():
    return inactivity.deactivate_inactive_users()


@shared_task(name="security.tasks.warn_inactive_users")
def warn_inactive_users_task():
    return inactivity.warn_soon_inactive_users()


@shared_task(name="security.tasks.remind_expiring_passwords")
def remind_expiring_passwords_task():
    return rotation.remind_expiring_passwords()


def purge_login_throttles(now=None):
    """Forget counters that no longer count (no failure within their block duration)."""
    now = now or timezone.now()
    stale = Q(last_failure_at__isnull=True)
    for kind, limit in LIMITS.items():
        stale |= Q(kind=kind, last_failure_at__lte=now - limit.duration)
    # A counter with attempts in flight (passwords being checked now) is still in use.
    in_use = Q(in_flight__gt=0, in_flight_since__gt=now - IN_FLIGHT_EXPIRY)
    deleted, _ = LoginThrottle.objects.filter(stale).exclude(in_use).delete()
    return deleted


@shared_task(name="security.tasks.purge_login_throttles")
def purge_login_throttles_task():
    return purge_login_throttles()
