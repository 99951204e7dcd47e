"""Signing in and out, changing and resetting the password, and switching entity: the
views of the sign-in flow, with the lockouts (security.lockouts) in front of the password."""

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.signals import user_login_failed
from django.contrib.auth.views import LoginView
from django.db import transaction
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.sessions import end_sessions
from accounts.tenancy import SESSION_ENTITY_KEY, parse_entity_id
from security import lockouts
from security.audit import record
from security.client_ip import client_ip
from security.forms import EmailLoginForm
from security.password_reset import QueuedPasswordResetForm, admit_reset
from security.signin import rotate_session, send_code_if_address_not_allowed


def checked_with_lockouts(request, account, username, view):
    """Run `view()` (which checks a password) behind the lockouts: refused unchecked
    during a block, else in one transaction, the attempt accounted for afterwards."""
    refusal = lockouts.admit(request, account, username)
    if refusal is not None:
        return refusal
    try:
        with transaction.atomic():
            response = view()
    except BaseException:
        lockouts.finish(request, rolled_back=True)
        raise
    lockouts.finish(request)
    return response


class EmailLoginView(LoginView):
    """Django's login view with the lockouts in front (security.lockouts).

    An attempt during a block is answered after one plain read of the counters and the
    refusal's audit event: no row is locked and no password is checked. Otherwise the
    attempt is reserved against both counters (waiting while every place is taken by
    attempts still being checked) and committed before the form checks the password, so
    simultaneous attempts see it. Everything after that (the password
    check, giving the reservation back, the new session, last_login and the audit event)
    commits once.
    """

    form_class = EmailLoginForm
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        response = checked_with_lockouts(
            request,
            lockouts.attempted_account(request.POST),
            request.POST.get("username", ""),
            lambda: super(EmailLoginView, self).post(request, *args, **kwargs),
        )
        if request.user.is_authenticated:
            # After the commit: texting a code may wait on the SMS provider.
            send_code_if_address_not_allowed(request, request.user)
        return response

    def form_invalid(self, form):
        # The attempt that starts a block says so at once, not only the next one.
        until = lockouts.block_started(getattr(self.request, "lockout_reservation", None))
        if until is not None:
            form.add_error(None, lockouts.lockout_text(until))
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
        # A change of context: the session gets a new id (the old one stops working).
        rotate_session(request)
        messages.success(request, f"You are now working in {access.entity.name}.")
        # Its allowlist may not have this address: the code is texted now, as at sign-in.
        send_code_if_address_not_allowed(request, request.user, unless_one_is_waiting=True)
    # Always the dashboard: the page the user was on may show an object of the old entity.
    return redirect("dashboard")


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's change form (it validates with every password rule and keeps this
    session signed in, under a new session id); other sessions of the user end here.

    The current password is a sign-in attempt (security.lockouts): refused unchecked
    during a block of the account or the address, and a wrong one counts against both
    and is audited as a failed sign-in."""

    template_name = "registration/password_change_form.html"
    success_url = reverse_lazy("dashboard")

    def post(self, request, *args, **kwargs):
        if not request.POST.get("old_password"):
            return super().post(request, *args, **kwargs)  # no password to check
        return checked_with_lockouts(
            request,
            lockouts.attempted_account({"username": request.user.email}),
            request.user.email,
            lambda: super(PasswordChangeView, self).post(request, *args, **kwargs),
        )

    def form_invalid(self, form):
        reservation = getattr(self.request, "lockout_reservation", None)
        if form.has_error("old_password", "password_incorrect"):
            # As authenticate() does for a wrong password: the audit event and the counters.
            user_login_failed.send(
                sender=__name__,
                credentials={"username": self.request.user.email},
                request=self.request,
            )
            until = lockouts.block_started(reservation)
            if until is not None:
                form.add_error(None, lockouts.lockout_text(until))
        elif "old_password" in form.cleaned_data:
            lockouts.release_after_success(reservation)
        return super().form_invalid(form)

    def form_valid(self, form):
        lockouts.release_after_success(getattr(self.request, "lockout_reservation", None))
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


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset request (the same answer for any address), limited per address typed
    and per client address, its email queued (security.password_reset)."""

    form_class = QueuedPasswordResetForm
    success_url = reverse_lazy("password_reset_done")
    subject_template_name = "registration/password_reset_subject.txt"
    email_template_name = "emails/security/password_reset.txt"

    def form_valid(self, form):
        admission = admit_reset(form.cleaned_data["email"], client_ip(self.request), timezone.now())
        if admission.refused_until is not None:
            record(
                "auth.password.reset_refused",
                request=self.request,
                data={"username": lockouts.account_key(form.cleaned_data["email"])},
            )
            form.add_error(None, RESET_REFUSED.format(when=when(admission.refused_until)))
            response = self.render_to_response(self.get_context_data(form=form), status=429)
            return lockouts.retry_after(response, admission.refused_until)
        if not admission.send:
            # The same answer as for any address: saying "too many" would tell it exists.
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)


RESET_REFUSED = "Too many password reset requests from your network. Try again after {when}."


def when(moment):
    local = timezone.localtime(moment)
    return f"{local:%H:%M} on {local:%Y-%m-%d}"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    success_url = reverse_lazy("password_reset_complete")

    def form_valid(self, form):
        response = super().form_valid(form)
        end_sessions([form.user.pk])
        record("auth.password.reset", actor=form.user, request=self.request)
        return response
