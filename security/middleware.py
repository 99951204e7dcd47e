"""Wires the security policy into each request: computed at most once, lazily.

Runs after TenantMiddleware. Records activity (at most every few minutes per user) and
sends a user whose password is too old to the change form from every other page.
"""

from django.contrib import messages
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from security.inactivity import touch
from security.rotation import is_password_expired
from security.selectors import load_effective_policy

# Pages a user with an expired password may still open.
PASSWORD_EXPIRY_EXEMPT = {"password_change", "logout", "healthz"}


class SecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            tenancy = request.tenancy
            request.security_policy = SimpleLazyObject(lambda: load_effective_policy(tenancy))
            touch(user, timezone.now())
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        user = request.user
        if not user.is_authenticated:
            return None
        match = request.resolver_match
        if match is not None and match.url_name in PASSWORD_EXPIRY_EXEMPT:
            return None
        max_age = request.security_policy.password_max_age_days.value
        if is_password_expired(user.password_changed_at, max_age, timezone.now()):
            messages.warning(
                request,
                f"Your password is older than {max_age} days. Choose a new one to continue.",
            )
            return redirect("password_change")
        return None
