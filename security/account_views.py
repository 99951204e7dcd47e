"""The user's own security page: phone number, two-factor enrolment and removal, and the
second step of signing in."""

import django_otp
from django import forms
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.generic import TemplateView

from security import allowlist, twofactor
from security.audit import record
from security.client_ip import client_ip
from security.middleware import NEXT_SESSION_KEY
from security.models import BackupCodeDevice, CodeRecipient
from security.phones import PhoneNumberField, check_country, countries_text, mask_phone
from security.services import (
    PhoneError,
    cancel_phone_change,
    confirm_phone,
    pending_phone,
    remove_phone,
    request_phone_change,
)
from security.sms import countries_for


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=20,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True}
        ),
    )


class PhoneForm(forms.Form):
    """A new mobile number: only of the countries the entity allows codes to."""

    phone = PhoneNumberField(label="Mobile phone", required=False)

    def __init__(self, *args, countries, **kwargs):
        super().__init__(*args, **kwargs)
        self.countries = countries
        self.fields["phone"].help_text = (
            f"A mobile number from {countries_text(countries)}, with the country code if it "
            "is abroad. A new number is used once you type the code texted to it."
        )

    def clean_phone(self):
        phone = self.cleaned_data["phone"]
        if phone:
            check_country(phone, self.countries)
        return phone


def continue_url(request):
    """Where the sign-in continues after a gate: the page first asked for, if ours."""
    wanted = request.session.pop(NEXT_SESSION_KEY, "") or ""
    if url_has_allowed_host_and_scheme(wanted, {request.get_host()}, request.is_secure()):
        return wanted
    return "/"


class AccountSecurityView(LoginRequiredMixin, TemplateView):
    template_name = "security/account.html"

    def get_context_data(self, **kwargs):
        user = self.request.user
        backup = BackupCodeDevice.objects.filter(user=user).first()
        pending = pending_phone(user)
        phone_form = kwargs.pop("phone_form", None) or PhoneForm(
            initial={"phone": user.phone}, countries=self.countries()
        )
        return super().get_context_data(
            has_2fa=twofactor.has_second_factor(user),
            backup_left=backup.remaining() if backup else 0,
            requires_2fa=self.request.security_policy.require_2fa.value,
            phone_form=phone_form,
            masked_phone=mask_phone(user.phone) if user.phone else "",
            pending_phone=mask_phone(pending.phone) if pending else "",
            phone_code_form=kwargs.pop("phone_code_form", None) or CodeForm(),
            remove_form=CodeForm(),
            **kwargs,
        )

    def countries(self):
        return countries_for(self.request.tenancy.entity)

    def post(self, request, *args, **kwargs):
        """The phone forms: a new number (texted a code), its code, a new code, cancel."""
        user, now = request.user, timezone.now()
        action = request.POST.get("action", "phone")
        if action == "confirm_phone":
            form = CodeForm(request.POST)
            if form.is_valid():
                confirmed, problem = confirm_phone(
                    user, form.cleaned_data["code"], request=request, now=now
                )
                if confirmed:
                    messages.success(request, "Your mobile phone number was saved.")
                    return redirect("account-security")
                if pending_phone(user) is None:  # dropped, or never there: no code form
                    messages.error(request, problem)
                    return redirect("account-security")
                form.add_error("code", problem)
            return self.render_to_response(self.get_context_data(phone_code_form=form))
        if action == "cancel_phone":
            cancel_phone_change(user)
            messages.info(request, "The new number was not saved.")
            return redirect("account-security")
        if action == "resend_phone":
            pending = pending_phone(user)
            phone = pending.phone if pending else ""
            form = PhoneForm(countries=self.countries())
        else:
            form = PhoneForm(request.POST, countries=self.countries())
            if not form.is_valid():
                return self.render_to_response(self.get_context_data(phone_form=form))
            phone = form.cleaned_data["phone"] or ""
            if not phone:
                if remove_phone(user, entity=request.tenancy.entity, request=request, now=now):
                    messages.success(request, "Your mobile phone number was removed.")
                return redirect("account-security")
            if phone == user.phone:
                cancel_phone_change(user)
                messages.info(request, "This number is already on file.")
                return redirect("account-security")
        if not phone:
            messages.error(request, "No new number is waiting for a code. Enter the number first.")
            return redirect("account-security")
        try:
            request_phone_change(
                user,
                phone,
                entity=request.tenancy.entity,
                ip=client_ip(request),
                request=request,
                now=now,
            )
        except PhoneError as exc:
            if action == "resend_phone":
                messages.error(request, exc.message)
                return redirect("account-security")
            form.add_error("phone", exc.message)
            return self.render_to_response(self.get_context_data(phone_form=form))
        messages.info(
            request,
            f"A code was sent to {mask_phone(phone)}. Type it below to start using this "
            "number; until then codes go to the number on file.",
        )
        return redirect("account-security")


class TwoFactorSetupView(LoginRequiredMixin, View):
    template_name = "security/2fa_setup.html"

    def page(self, request, device, form, status=200):
        return render(
            request,
            self.template_name,
            {
                "qr_svg": twofactor.qr_svg(device),
                "secret": twofactor.secret_text(device),
                "form": form,
                "already": twofactor.has_second_factor(request.user),
                # Sent here by the sign-in gate: the way out is logging out.
                "required": request.security_policy.require_2fa.value
                and not request.user.is_verified(),
            },
            status=status,
        )

    def get(self, request):
        return self.page(request, twofactor.start_enrolment(request.user), CodeForm())

    def post(self, request):
        device = twofactor.start_enrolment(request.user)
        form = CodeForm(request.POST)
        wait = twofactor.device_throttled_for(device) if form.is_valid() else 0
        if wait:
            # Checking now would refuse even the right code: say so instead.
            form.add_error("code", twofactor.too_many_wrong_codes(wait))
        elif form.is_valid():
            codes = twofactor.confirm_enrolment(device, form.cleaned_data["code"], request=request)
            if codes is not None:
                django_otp.login(request, device)
                request.session.cycle_key()
                return render(
                    request,
                    "security/2fa_backup_codes.html",
                    {"codes": codes, "next": continue_url(request), "first_time": True},
                )
            form.add_error(
                "code",
                "That code is not right. Check the time on your phone and try the newest code.",
            )
        return self.page(request, device, form)


class TwoFactorVerifyView(LoginRequiredMixin, View):
    template_name = "security/2fa_verify.html"

    def get(self, request):
        if request.user.is_verified():
            return redirect(continue_url(request))
        return render(request, self.template_name, {"form": CodeForm()})

    def post(self, request):
        form = CodeForm(request.POST)
        if form.is_valid():
            wait = twofactor.throttled_for(request.user)
            check = twofactor.check_second_factor(
                request.user, form.cleaned_data["code"], request=request
            )
            device = check.device
            if device is not None:
                django_otp.login(request, device)
                request.session.cycle_key()
                if isinstance(device, BackupCodeDevice):
                    left = device.remaining()
                    record(
                        "auth.2fa.backup_code_used",
                        actor=request.user,
                        request=request,
                        data={"remaining": left},
                    )
                    twofactor.notify(
                        request.user,
                        "A backup code was used",
                        f"A backup code was used to sign in to your account; {left} remain. "
                        "If this was not you, contact your administrator at once.",
                    )
                    messages.warning(request, f"You used a backup code; {left} remain.")
                else:
                    record("auth.2fa.verified", actor=request.user, request=request)
                return redirect(continue_url(request))
            record("auth.2fa.failed", actor=request.user, request=request)
            if check.unreadable:
                form.add_error("code", twofactor.UNREADABLE_AUTHENTICATOR)
            elif wait:
                form.add_error("code", twofactor.too_many_wrong_codes(wait))
            else:
                form.add_error(
                    "code",
                    "That code is not right. Try the newest code from your app, or a backup code.",
                )
        return render(request, self.template_name, {"form": form})


class BackupCodesView(LoginRequiredMixin, View):
    http_method_names = ["post"]

    def post(self, request):
        if not twofactor.has_second_factor(request.user):
            messages.error(request, "Set up two-factor authentication first.")
            return redirect("account-security")
        codes = twofactor.regenerate_backup_codes(request.user, request=request)
        return render(
            request,
            "security/2fa_backup_codes.html",
            {"codes": codes, "next": "/account/security/"},
        )


class TwoFactorRemoveView(LoginRequiredMixin, View):
    http_method_names = ["post"]

    def post(self, request):
        if request.security_policy.require_2fa.value:
            messages.error(
                request,
                "Your organisation requires two-factor authentication, so it cannot be turned "
                "off. To move to a new phone, an administrator can reset it.",
            )
            return redirect("account-security")
        form = CodeForm(request.POST)
        if (
            not form.is_valid()
            or twofactor.verify_second_factor(request.user, form.cleaned_data["code"]) is None
        ):
            messages.error(request, "That code is not right; two-factor authentication stays on.")
            return redirect("account-security")
        twofactor.remove_second_factor(request.user, actor=request.user, request=request)
        messages.success(request, "Two-factor authentication is off.")
        return redirect("account-security")


class VerifyAddressView(LoginRequiredMixin, View):
    """The paused sign-in: an SMS code approves the new address."""

    template_name = "security/verify_address.html"

    def setup_context(self, request):
        self.ip = client_ip(request)
        self.entity = request.tenancy.entity
        self.context = (
            allowlist.context_for(request.user, self.entity, request.security_policies)
            if self.entity is not None
            else None
        )

    def page(self, request, form=None, error=None):
        challenge = allowlist.open_challenge(
            request.user, self.ip, request.session.session_key, timezone.now()
        )
        exhausted = allowlist.exhausted(challenge)
        if exhausted and error is None:
            error = allowlist.TOO_MANY_FAILURES  # the code form is not shown again
        return render(
            request,
            self.template_name,
            {
                "ip": self.ip,
                "challenge": challenge,
                "exhausted": exhausted,
                "form": form or CodeForm(),
                "error": error,
                "to_admins": self.context is not None
                and self.context.recipient == CodeRecipient.ADMINS,
            },
        )

    def allowed(self):
        return self.context is None or allowlist.address_allowed(self.ip, self.context)

    def get(self, request):
        self.setup_context(request)
        if self.allowed():
            return redirect(continue_url(request))
        return self.page(request)

    def post(self, request):
        self.setup_context(request)
        if self.allowed():
            return redirect(continue_url(request))
        now = timezone.now()
        if request.POST.get("action") == "send":
            try:
                allowlist.send_code(
                    user=request.user,
                    entity=self.entity,
                    ip=self.ip,
                    session_key=request.session.session_key,
                    recipient=self.context.recipient,
                    request=request,
                    now=now,
                )
            except allowlist.ChallengeError as exc:
                return self.page(request, error=exc.message)
            return redirect("verify-address")
        form = CodeForm(request.POST)
        challenge = allowlist.open_challenge(
            request.user, self.ip, request.session.session_key, now
        )
        if challenge is None:
            return self.page(request, error="No code is waiting. Ask for one first.")
        if not form.is_valid():
            return self.page(request, form=form)
        approved, message = allowlist.check_code(
            challenge, form.cleaned_data["code"], request=request, now=now
        )
        if not approved:
            form.add_error("code", message)
            return self.page(request, form=form)
        address = allowlist.normalize_ip(self.ip)
        failing = [
            policy
            for policy, networks in zip(self.context.policies, self.context.allowlists, strict=True)
            if not allowlist.in_list(address, networks)
        ]
        allowlist.approve_address(challenge, failing, request=request, now=now)
        request.session.cycle_key()
        messages.success(request, f"The address {self.ip} is approved for your account.")
        return redirect(continue_url(request))
