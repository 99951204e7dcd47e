"""Signing in and out, changing and resetting the password, and switching entity: the
views of the sign-in flow, with the lockouts (security.lockouts) in front of the password."""

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.db import transaction
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.sessions import end_sessions
from accounts.tenancy import SESSION_ENTITY_KEY, parse_entity_id
from security.audit import record
from security.client_ip import client_ip
from security.forms import EmailLoginForm
from security.lockouts import (
    attempted_account,
    block_in_force,
    block_started,
    lockout_text,
    record_refusal,
    refusal_page,
    reserve_attempt,
)
from security.signin import send_code_if_address_not_allowed


class EmailLoginView(LoginView):
    """Django's login view with the lockouts in front (security.lockouts).

    An attempt during a block is answered after one plain read of the counters and the
    refusal's audit event: no row is locked and no password is checked. Otherwise the
    attempt is reserved against both counters and committed before the form checks the
    password, so simultaneous attempts see it. Everything after that (the password
    check, giving the reservation back, the new session, last_login and the audit event)
    commits once.
    """

    form_class = EmailLoginForm
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        account = attempted_account(request.POST)
        ip = client_ip(request)
        now = timezone.now()
        until = block_in_force(account, ip, now)
        if until is None:
            request.lockout_reservation = reserve_attempt(account, ip, now)
            until = request.lockout_reservation.refused_until
        if until is not None:
            record_refusal(request, account, until)
            return refusal_page(request, until, request.POST.get("username", ""))
        with transaction.atomic():
            response = super().post(request, *args, **kwargs)
        if request.user.is_authenticated:
            # After the commit: texting a code may wait on the SMS provider.
            send_code_if_address_not_allowed(request, request.user)
        return response

    def form_invalid(self, form):
        # The attempt that starts a block says so at once, not only the next one.
        until = block_started(getattr(self.request, "lockout_reservation", None))
        if until is not None:
            form.add_error(None, lockout_text(until))
        return super().form_invalid(form)


class LogoutView(auth_views.LogoutView):
    """Django's logout, which signs out on POST only. A typed or bookmarked GET gets a page
    with the button instead of an empty 405 (signing out on a GET could be triggered by
    any page that links here)."""

    http_method_names = ["get", "post", "options"]

    def get(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect("login")
        return render(request, "registration/logout_confirm.html")


@require_POST
@login_required
def switch_entity(request):
    """Make another of the user's entities the current one (the header's switcher)."""
    wanted = parse_entity_id(request.POST.get("entity"))
    access = next((a for a in request.tenancy.accesses if a.entity.pk == wanted), None)
    if access is None:
        messages.error(request, "That entity does not exist or you have no access to it.")
    else:
        request.session[SESSION_ENTITY_KEY] = access.entity.pk
        messages.success(request, f"You are now working in {access.entity.name}.")
        # Its allowlist may not have this address: the code is texted now, as at sign-in.
        send_code_if_address_not_allowed(request, request.user, unless_one_is_waiting=True)
    # Always the dashboard: the page the user was on may show an object of the old entity.
    return redirect("dashboard")


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's change form (it validates with every password rule and keeps this
    session signed in); other sessions of the user end here."""

    template_name = "registration/password_change_form.html"
    success_url = reverse_lazy("dashboard")

    def form_valid(self, form):
        response = super().form_valid(form)
        ended = end_sessions(
            [self.request.user.pk], keep_session_key=self.request.session.session_key
        )
        record(
            "auth.password.changed",
            actor=self.request.user,
            request=self.request,
            data={"other_sessions_ended": ended},
        )
        messages.success(self.request, "Your password was changed.")
        return response


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    success_url = reverse_lazy("password_reset_complete")

    def form_valid(self, form):
        response = super().form_valid(form)
        end_sessions([form.user.pk])
        record("auth.password.reset", actor=form.user, request=self.request)
        return response
