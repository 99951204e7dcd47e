"""Writes to security settings (the policy of a level and its allowlist) and to a user's
mobile number: every change is audited, a policy change with its old and new values."""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.crypto import constant_time_compare, salted_hmac

from core import emails
from security import ratelimit
from security.audit import record
from security.inactivity import inactivity_cutoff
from security.models import (
    AllowedNetwork,
    EncryptedTOTPDevice,
    PhoneConfirmation,
    SecurityNotice,
    SecurityPolicy,
)
from security.phones import check_country, mask_phone
from security.selectors import users_in_scope
from security.sms import SmsError, countries_for, send_sms


@dataclass(frozen=True)
class Impact:
    """Who a tightening would hit, shown before the admin confirms."""

    must_change_password: int = 0
    would_be_deactivated: int = 0
    must_set_up_2fa: int = 0

    def __bool__(self):
        return bool(self.must_change_password or self.would_be_deactivated or self.must_set_up_2fa)


def _tightens(old, new):
    return new is not None and (old is None or new < old)


def tightening_impact(policy, values, now):
    scope = users_in_scope(entity=policy.entity, group=policy.group).filter(is_active=True)
    password_days = values.get("password_max_age_days")
    months = values.get("inactivity_limit_months")
    must_change = deactivated = without_2fa = 0
    if values.get("require_2fa") and not policy.require_2fa:
        with_device = EncryptedTOTPDevice.objects.filter(confirmed=True).values("user_id")
        without_2fa = scope.exclude(pk__in=with_device).count()
    if _tightens(policy.password_max_age_days, password_days):
        must_change = scope.filter(
            password_changed_at__lt=now - timedelta(days=password_days)
        ).count()
    if _tightens(policy.inactivity_limit_months, months):
        deactivated = scope.filter(last_active_at__lt=inactivity_cutoff(months, now)).count()
    return Impact(must_change, deactivated, without_2fa)


def _jsonable(value):
    return sorted(value) if isinstance(value, (list, tuple, set)) else value


def update_policy(policy_id, values, *, actor, now, request=None):
    """Apply `values` (field -> new value) to one policy; returns {field: [old, new]}."""
    with transaction.atomic():
        policy = (
            SecurityPolicy.objects.select_for_update(of=("self",))
            .select_related("entity", "group")
            .get(pk=policy_id)
        )
        changes = {}
        for field, new in values.items():
            old = getattr(policy, field)
            if _jsonable(old) != _jsonable(new):
                changes[field] = [_jsonable(old), _jsonable(new)]
                setattr(policy, field, new)
        if not changes:
            return {}
        policy.updated_at = now
        policy.save()
        record(
            "security.settings.changed",
            actor=actor,
            entity=policy.entity,
            group=policy.group,
            target=policy,
            request=request,
            now=now,
            data={"level": policy.level, "changes": changes},
        )
    return changes


def add_network(policy, network, label, *, actor, now, request=None):
    """Add `network` (normalised CIDR) for everyone to `policy`'s allowlist; returns the
    entry, or None when the list already has it for everyone."""
    with transaction.atomic():
        # Under the policy row's lock, two admins adding the same network add it once.
        SecurityPolicy.objects.select_for_update().get(pk=policy.pk)
        if policy.networks.filter(network=network, for_user__isnull=True).exists():
            return None
        entry = AllowedNetwork.objects.create(
            policy=policy, network=network, label=label, created_by=actor, created_at=now
        )
        record(
            "security.allowlist.added",
            actor=actor,
            entity=policy.entity,
            group=policy.group,
            target=entry,
            request=request,
            now=now,
            data={"level": policy.level, "network": network, "label": label},
        )
    return entry


def remove_network(entry, *, actor, now, request=None):
    """Remove one allowlist entry of a level."""
    policy = entry.policy
    with transaction.atomic():
        entry.delete()
        record(
            "security.allowlist.removed",
            actor=actor,
            entity=policy.entity,
            group=policy.group,
            request=request,
            now=now,
            data={"level": policy.level, "network": entry.network, "label": entry.label},
        )


# --- The user's mobile number ---------------------------------------------------------------
#
# The number that receives validation codes (User.phone) changes only once the new number
# has proved it is the user's: it waits in a PhoneConfirmation until the code texted to it
# is typed on the account page. The owner is emailed whenever it changes.

PHONE_CODE_VALIDITY = timedelta(minutes=10)
PHONE_CODE_MAX_FAILURES = 5
PHONE_RESEND_AFTER = timedelta(minutes=1)
PHONE_TOO_MANY_FAILURES = (
    "Too many wrong codes: the new number was not saved. Enter it again to get a new code."
)


class PhoneError(Exception):
    """Why a number cannot be used or confirmed now; `message` is safe to show."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


def _phone_code_hash(user_id, phone, code):
    return salted_hmac("security.phone-confirmation", f"{user_id}:{phone}:{code}").hexdigest()


def pending_phone(user):
    """The new number waiting for its code, if any."""
    return PhoneConfirmation.objects.filter(user=user).first()


def request_phone_change(user, phone, *, entity, ip, request, now):
    """Text a confirmation code to `phone` (E.164, a mobile number) and keep it pending
    until the code comes back (`confirm_phone`); the number on file stays in use
    meanwhile. `entity` is where the user works: its countries and SMS cap apply.
    Returns the PhoneConfirmation; raises PhoneError."""
    if phone == user.phone:
        raise PhoneError("This number is already on file.")
    try:
        check_country(phone, countries_for(entity))
    except ValidationError as exc:
        raise PhoneError(exc.messages[0]) from None
    pending = pending_phone(user)
    if (
        pending is not None
        and pending.last_sent_at
        and now < pending.last_sent_at + (PHONE_RESEND_AFTER)
    ):
        wait = int((pending.last_sent_at + PHONE_RESEND_AFTER - now).total_seconds()) + 1
        raise PhoneError(
            f"A code was sent less than a minute ago. Wait {wait} seconds to ask again."
        )
    try:
        ratelimit.spend_sms(
            user=user,
            entity=entity,
            ip=ip,
            phones=[phone],
            request=request,
            purpose="phone_confirmation",
        )
    except ratelimit.SmsRefused as exc:
        raise PhoneError(exc.message) from None
    code = f"{secrets.randbelow(10**6):06d}"
    same_number = pending is not None and pending.phone == phone
    with transaction.atomic():
        pending, _ = PhoneConfirmation.objects.update_or_create(
            user=user,
            defaults={
                "entity": entity,
                "phone": phone,
                "code_hash": _phone_code_hash(user.pk, phone, code),
                "expires_at": now + PHONE_CODE_VALIDITY,
                "last_sent_at": now,
                # A new code for the same number keeps the wrong tries (as for addresses).
                "failures": pending.failures if same_number else 0,
                **({} if same_number else {"created_at": now}),
            },
        )
        record(
            "account.phone.confirmation_sent",
            actor=user,
            entity=entity,
            request=request,
            now=now,
            data={"new": mask_phone(phone)},
        )
    try:
        send_sms(
            phone,
            f"Your code to confirm this number for codes that approve sign-ins: {code} "
            "(valid 10 minutes).",
            entity=entity,
        )
    except SmsError as exc:
        # Nothing arrived: no code works, and the user may ask again at once.
        PhoneConfirmation.objects.filter(pk=pending.pk).update(code_hash="", last_sent_at=None)
        raise PhoneError(exc.user_message) from None
    return pending


def cancel_phone_change(user):
    """Forget the number waiting for its code."""
    PhoneConfirmation.objects.filter(user=user).delete()


def confirm_phone(user, code, *, request, now):
    """Make the pending number the user's if `code` is the one texted to it; 5 wrong codes
    drop it. Returns (confirmed, message)."""
    with transaction.atomic():
        pending = PhoneConfirmation.objects.select_for_update().filter(user=user).first()
        if pending is None:
            return False, "No new number is waiting for a code. Enter the number first."
        if not pending.code_hash or pending.expires_at is None or now >= pending.expires_at:
            return False, "The code has expired. Ask for a new one."
        cleaned = "".join(ch for ch in str(code) if ch.isdigit())
        expected = _phone_code_hash(user.pk, pending.phone, cleaned)
        if not constant_time_compare(expected, pending.code_hash):
            pending.failures += 1
            left = PHONE_CODE_MAX_FAILURES - pending.failures
            record(
                "account.phone.code_failed",
                actor=user,
                entity=pending.entity,
                request=request,
                now=now,
                data={"new": mask_phone(pending.phone), "tries_left": max(left, 0)},
            )
            if left <= 0:
                pending.delete()
                return False, PHONE_TOO_MANY_FAILURES
            pending.save(update_fields=["failures"])
            return False, f"That code is not right. {left} tr{'y' if left == 1 else 'ies'} left."
        try:
            # The entity may have stopped allowing the country since the code was sent.
            check_country(pending.phone, countries_for(pending.entity))
        except ValidationError as exc:
            pending.delete()
            return False, exc.messages[0]
        _change_phone(user, pending.phone, entity=pending.entity, request=request, now=now)
        pending.delete()
    return True, ""


def remove_phone(user, *, entity, request, now):
    """Take the user's number off file (no code needed: nothing will be texted to it).
    Returns whether there was one."""
    with transaction.atomic():
        PhoneConfirmation.objects.filter(user=user).delete()
        if not user.phone:
            return False
        _change_phone(user, "", entity=entity, request=request, now=now)
    return True


def _change_phone(user, phone, *, entity, request, now):
    """Write the number, audit it (both numbers masked) and email the owner."""
    old = user.phone
    user.phone = phone
    user.save(update_fields=["phone"])
    masked_old = mask_phone(old) if old else ""
    masked_new = mask_phone(phone) if phone else ""
    record(
        "account.phone.changed",
        actor=user,
        request=request,
        now=now,
        data={"old": masked_old, "new": masked_new},
    )
    emails.queue(
        SecurityNotice,
        to=user.email,
        subject="The mobile phone number of your account was changed",
        text_template="emails/security/phone_changed.txt",
        context={"user": user, "old": masked_old, "new": masked_new, "when": now},
        user=user,
        entity=entity,
        kind=SecurityNotice.Kind.PHONE_CHANGED,
    )
