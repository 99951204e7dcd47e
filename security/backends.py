"""Authentication by email and password (Django's ModelBackend).

Runs after django-axes' backend, which has already reserved this attempt against the
lockout counters (security.lockouts). A correct password gives the reservation back;
an account over its inactivity limit is refused (and deactivated) even before the
nightly job has run.
"""

from django.contrib.auth.backends import ModelBackend
from django.utils import timezone

from security.inactivity import deactivate_if_over_limit
from security.lockouts import release_after_success


class EmailBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            return None
        if deactivate_if_over_limit(user, now=timezone.now()):
            return None
        release_after_success(getattr(request, "lockout_reservation", None))
        return user
