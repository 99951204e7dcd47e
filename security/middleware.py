"""Wires the security policy into each request and holds the sign-in gates.

SecurityPolicyMiddleware runs after TenantMiddleware and OTPMiddleware. It computes the
effective policy at most once per request (lazily), records activity (at most every few
minutes per user), and runs the gates in order before any view: a signed-in session
must pass each gate, whatever the first factor was (password, reset, single sign-on).

1. IP allowlist: an address outside the allowlists of the current entity waits for an
   SMS code (also when a signed-in session moves to a new address);
2. second factor: a user with an authenticator confirms a code; a user without one
   enrols when their policy requires 2FA;
3. password age: an expired password must be changed.
Each gate lets through only its own pages and logout.
"""

from django.contrib import messages
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.functional import SimpleLazyObject

from security.allowlist import address_allowed, context_for, passed_marker
from security.client_ip import client_ip
from security.inactivity import touch
from security.policy import is_password_expired
from security.selectors import effective_from, load_policies
from security.twofactor import has_second_factor

ALWAYS_OPEN = {"logout", "healthz", "readyz"}
NEXT_SESSION_KEY = "signin.next"


# Set once a session is known to belong to a user without an authenticator, so ordinary
# requests skip the device query. Safe because enrolling ends the user's other sessions.
NO_DEVICE_SESSION_KEY = "signin.no_2fa_device"


# The marker of the last address that passed the allowlists (security.allowlist), so
# ordinary requests from it skip reading the entries.
ALLOWLIST_PASSED_KEY = "signin.allowlist_passed"


def allowlist_gate(request, now):
    entity = request.tenancy.entity
    policies = request.security_policies
    if entity is None or not any(p.ip_allowlist_enabled for p in policies):
        return None
    ip = client_ip(request)
    marker = passed_marker(ip, entity, policies)
    if request.session.get(ALLOWLIST_PASSED_KEY) == marker:
        return None
    if address_allowed(ip, context_for(request.user, entity, policies)):
        request.session[ALLOWLIST_PASSED_KEY] = marker
        return None
    # Switching to another entity is allowed: its allowlist may not apply.
    return "verify-address", {"verify-address", "switch-entity"}, None


def second_factor_gate(request, now):
    user = request.user
    if user.is_verified():
        return None
    if not request.session.get(NO_DEVICE_SESSION_KEY):
        if has_second_factor(user):
            return "2fa-verify", {"2fa-verify"}, None
        request.session[NO_DEVICE_SESSION_KEY] = True
    if request.security_policy.require_2fa.value:
        return (
            "2fa-setup",
            {"2fa-setup"},
            "Your organisation requires two-factor authentication. Set it up to continue.",
        )
    return None


def password_age_gate(request, now):
    max_age = request.security_policy.password_max_age_days.value
    if is_password_expired(request.user.password_changed_at, max_age, now):
        return (
            "password_change",
            {"password_change"},
            f"Your password is older than {max_age} days. Choose a new one to continue.",
        )
    return None


GATES = [allowlist_gate, second_factor_gate, password_age_gate]


class SecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            tenancy = request.tenancy
            policies = SimpleLazyObject(lambda: load_policies(tenancy))
            request.security_policies = policies
            request.security_policy = SimpleLazyObject(lambda: effective_from(policies))
            touch(user, timezone.now())
        response = self.get_response(request)
        if user is not None and user.is_authenticated and not response.has_header("Cache-Control"):
            # Staff pages hold customers' personal data: no copy stays in the browser's
            # cache, so Back after signing out or anonymising shows nothing old.
            add_never_cache_headers(response)
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not request.user.is_authenticated:
            return None
        match = request.resolver_match
        name = match.url_name if match is not None else None
        if name in ALWAYS_OPEN:
            return None
        now = timezone.now()
        for gate in GATES:
            closed = gate(request, now)
            if closed is None:
                continue
            target, open_names, message = closed
            if name in open_names:
                return None
            if request.method == "GET" and NEXT_SESSION_KEY not in request.session:
                request.session[NEXT_SESSION_KEY] = request.get_full_path()
            if message:
                messages.warning(request, message)
            return redirect(target)
        return None
