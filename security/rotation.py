"""Forced password rotation: the reminder job. (When a password is too old is pure policy:
security.policy.is_password_expired.)"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.tenancy import system_code
from core import emails
from security.models import SecurityNotice, SecurityPolicy
from security.policy import WARNING_DAYS, password_expires_at
from security.selectors import effective_policy_for_user, users_in_scope


def remind_expiring_passwords(now=None):
    """Email users whose password expires within WARNING_DAYS, once per password: each
    reminder is queued in the outbox (SecurityNotice) and sent by the worker."""
    now = now or timezone.now()
    sent = 0
    with system_code():
        for policy in SecurityPolicy.objects.filter(password_max_age_days__isnull=False):
            window_start = now - timedelta(days=policy.password_max_age_days)
            expiring = users_in_scope(entity=policy.entity, group=policy.group).filter(
                is_active=True,
                password_reminder_sent_at__isnull=True,
                password_changed_at__gte=window_start,
                password_changed_at__lt=window_start + timedelta(days=WARNING_DAYS),
            )
            for user in expiring:
                max_age = effective_policy_for_user(user).password_max_age_days.value
                expires = password_expires_at(user.password_changed_at, max_age)
                # Claim the reminder and queue it together, so two runs never send it
                # twice and a failed run leaves it for the next; the worker sends it once
                # this commits.
                with transaction.atomic():
                    claimed = User.objects.filter(
                        pk=user.pk, password_reminder_sent_at__isnull=True
                    ).update(password_reminder_sent_at=now)
                    if not claimed:
                        continue
                    emails.queue(
                        SecurityNotice,
                        to=user.email,
                        subject="Your password expires soon",
                        text_template="emails/security/password_expiring.txt",
                        context={"user": user, "expires": expires},
                        user=user,
                        entity=policy.entity,
                        kind=SecurityNotice.Kind.PASSWORD_EXPIRING,
                    )
                sent += 1
    return sent
