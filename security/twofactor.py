"""Two-factor authentication: enrolment, the second sign-in step, backup codes, removal.

Devices are django-otp devices (security.models), so `django_otp.login()` marks a session
verified and OTPMiddleware gives every request `user.is_verified()`. The sign-in gate
(security.middleware) sends an unverified user with a device to the code form, and a user
without one to enrolment when their policy requires 2FA -- whatever the first factor was.
"""

import base64
import dataclasses
import os
import secrets

import qrcode
import qrcode.image.svg
from django.db import transaction
from django.utils import timezone
from django.utils.safestring import mark_safe

from accounts.sessions import end_sessions
from core import emails
from security.audit import record
from security.crypto import DecryptionError, backup_code_hash, normalize_code
from security.models import BackupCode, BackupCodeDevice, EncryptedTOTPDevice, SecurityNotice
from security.unreadable import report_unreadable

BACKUP_CODE_COUNT = 10
BACKUP_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i
# The sign-in step when the authenticator's stored key does not decrypt (copied from
# another device, changed, or under a key no longer configured): no code can be checked.
UNREADABLE_AUTHENTICATOR = (
    "Your authenticator app cannot be checked: its key cannot be read, and the "
    "administrators have been told. Enter one of your backup codes, or ask an "
    "administrator to reset two-factor authentication."
)


def confirmed_totp(user):
    return EncryptedTOTPDevice.objects.filter(user=user, confirmed=True).first()


def has_second_factor(user):
    return EncryptedTOTPDevice.objects.filter(user=user, confirmed=True).exists()


def start_enrolment(user):
    """The user's pending (unconfirmed) authenticator, created on first use."""
    device = EncryptedTOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is not None:
        try:
            device.bin_key  # noqa: B018 -- the page shows it; it must decrypt
        except DecryptionError as error:
            # Nothing relies on an unconfirmed device yet: a new key replaces it.
            report_unreadable(error, actor=user, target=user)
            device.delete()
            device = None
    if device is None:
        device = EncryptedTOTPDevice.objects.create(
            user=user, name="Authenticator app", confirmed=False, bin_key=os.urandom(20)
        )
    return device


def secret_text(device):
    """The secret as people type it into an app: base32 in groups of four."""
    encoded = base64.b32encode(device.bin_key).decode("ascii").rstrip("=")
    return " ".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def qr_svg(device):
    """The otpauth:// URL as an inline SVG QR code (made here, no external service)."""
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=10)
    # Generated from our own URL by qrcode: paths only, no scripts or styles.
    return mark_safe(image.to_string(encoding="unicode"))


def _make_backup_codes(user):
    """Ten new codes; the old ones stop working. The device itself is kept, so a session
    verified with a backup code stays verified."""
    device, _ = BackupCodeDevice.objects.get_or_create(
        user=user, defaults={"name": "Backup codes", "confirmed": True}
    )
    device.codes.all().delete()
    codes = []
    for _ in range(BACKUP_CODE_COUNT):
        raw = "".join(secrets.choice(BACKUP_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    BackupCode.objects.bulk_create(
        [BackupCode(device=device, code_hash=backup_code_hash(code)) for code in codes]
    )
    return codes


def confirm_enrolment(device, token, *, request):
    """Activate the device if `token` is right; returns the new backup codes, or None.
    The user's other sessions end: they were signed in without this device."""
    try:
        verified = device.verify_token(normalize_code(token))
    except DecryptionError as error:
        report_unreadable(error, actor=device.user, target=device.user, request=request)
        verified = False
    if not verified:
        record("auth.2fa.enrolment_failed", actor=device.user, request=request)
        return None
    with transaction.atomic():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        EncryptedTOTPDevice.objects.filter(user=device.user).exclude(pk=device.pk).delete()
        codes = _make_backup_codes(device.user)
    end_sessions([device.user.pk], keep_session_key=request.session.session_key)
    record("auth.2fa.enabled", actor=device.user, request=request)
    notify(
        device.user,
        "Two-factor authentication is on",
        "Two-factor authentication was turned on for your account. If this was not you, "
        "contact your administrator at once.",
    )
    return codes


def regenerate_backup_codes(user, *, request):
    with transaction.atomic():
        codes = _make_backup_codes(user)
    record("auth.2fa.backup_codes_regenerated", actor=user, request=request)
    return codes


@dataclasses.dataclass(frozen=True)
class SecondFactorCheck:
    """What checking a code found: the device that accepted it (None: refused), and
    whether the authenticator's key could not be read (the code was never checked)."""

    device: object = None
    unreadable: bool = False


def check_second_factor(user, token, *, request=None):
    """Check `token` (a 6-digit authenticator code, else a backup code). Each device
    applies django-otp's throttling and replay protection; the row is locked while
    checking (as django-otp's `for_verify`), so the same code sent twice at once is
    accepted once. An authenticator whose key does not decrypt accepts nothing; the
    failure is reported (security.unreadable) and backup codes still work."""
    code = normalize_code(token)
    if not code:
        return SecondFactorCheck()
    failure = None
    with transaction.atomic():
        totp = (
            EncryptedTOTPDevice.objects.select_for_update()
            .filter(user=user, confirmed=True)
            .first()
        )
        if totp is not None and code.isdigit() and len(code) == totp.digits:
            try:
                return SecondFactorCheck(totp if totp.verify_token(code) else None)
            except DecryptionError as error:
                failure = error
        else:
            backup = (
                BackupCodeDevice.objects.select_for_update()
                .filter(user=user, confirmed=True)
                .first()
            )
            if backup is not None and backup.verify_token(code):
                return SecondFactorCheck(backup)
    if failure is not None:
        report_unreadable(failure, actor=user, target=user, request=request)
        return SecondFactorCheck(unreadable=True)
    return SecondFactorCheck()


def verify_second_factor(user, token, *, request=None):
    """The device that accepts `token`, or None (check_second_factor)."""
    return check_second_factor(user, token, request=request).device


def device_throttled_for(device):
    """Seconds before django-otp's throttling lets `device` check a code again, or 0."""
    allowed, details = device.verify_is_allowed()
    if not allowed and details and details.get("locked_until"):
        return max(1, int((details["locked_until"] - timezone.now()).total_seconds()))
    return 0


def throttled_for(user):
    """Seconds to wait before the next code can be checked, or 0."""
    devices = (confirmed_totp(user), BackupCodeDevice.objects.filter(user=user).first())
    return max((device_throttled_for(d) for d in devices if d is not None), default=0)


def too_many_wrong_codes(wait):
    return f"Too many wrong codes. Wait {wait} second{'s' if wait != 1 else ''} and try again."


def remove_second_factor(user, *, actor, request, reason="", entity=None):
    """Turn 2FA off for `user` (by themselves, or an admin's reset with a reason)."""
    with transaction.atomic():
        EncryptedTOTPDevice.objects.filter(user=user).delete()
        BackupCodeDevice.objects.filter(user=user).delete()
    by_admin = actor is not None and actor.pk != user.pk
    if by_admin:
        end_sessions([user.pk])
    record(
        "auth.2fa.reset" if by_admin else "auth.2fa.disabled",
        actor=actor,
        entity=entity,
        target=user,
        request=request,
        data={"reason": reason} if reason else {},
    )
    notify(
        user,
        "Two-factor authentication is off",
        (
            f"An administrator ({actor.email}) reset two-factor authentication on your "
            "account. You will be asked to set it up again if your organisation requires it."
        )
        if by_admin
        else "Two-factor authentication was turned off for your account. If this was not "
        "you, contact your administrator at once.",
        entity=entity,
    )


def notify(user, subject, body, *, entity=None):
    """Tell `user` their second factor changed: queued in the outbox, sent by the worker
    once the caller's transaction commits."""
    emails.queue(
        SecurityNotice,
        to=user.email,
        subject=subject,
        text_template="emails/security/twofactor_changed.txt",
        context={"user": user, "body": body},
        user=user,
        entity=entity,
        kind=SecurityNotice.Kind.TWO_FACTOR,
    )
