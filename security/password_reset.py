"""Password reset by email: how often it may be asked for, and its email.

Requests are counted per address typed (3 an hour) and per client IP address (20 an
hour) on LoginThrottle rows (kinds RESET and RESET_IP, limits in security.lockouts),
under their row locks, so a burst counts exactly across processes. The answer is the
same whether or not the address belongs to anyone: past the address's limit no email
is sent and the page says "sent" as always (saying otherwise would tell who has an
account); past the IP address's limit, the page says to wait (429 with Retry-After),
which tells nothing about any account.

The link goes through the mail outbox (a SecurityNotice, sent by the worker after the
request commits) and is built on settings.SITE_URL, never the request's Host: the
request does the same work for a known and an unknown address and waits on no SMTP
server, so its time tells nothing either.
"""

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.forms import PasswordResetForm
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from core import emails
from core.http import site_url
from security.lockouts import (
    LIMITS,
    account_key,
    current_failures,
    lock_counters,
    store_failures,
)
from security.models import LoginThrottle, SecurityNotice

Kind = LoginThrottle.Kind


@dataclass(frozen=True)
class Admission:
    send: bool  # False: answer as usual, but send nothing (the address's limit)
    refused_until: datetime | None = None  # the IP address's limit: say when to retry


def admit_reset(email, ip, now):
    """Count one reset request for `email` from `ip` and say whether its email may go.
    A request refused for its IP address is not counted; one refused for its address
    still counts against the IP address."""
    keys = [(Kind.RESET_IP, ip)] if ip else []
    keys.append((Kind.RESET, account_key(email)))
    with transaction.atomic():
        rows = lock_counters(keys)
        counted = []
        for key in keys:
            row, limit = rows[key], LIMITS[key[0]]
            used = current_failures(row.failures, row.last_failure_at, limit, now)
            if used >= limit.failures:
                if key[0] == Kind.RESET_IP:
                    return Admission(send=False, refused_until=row.last_failure_at + limit.duration)
                break
            row.failures = used + 1
            counted.append(row)
        if counted:
            store_failures(counted, now)
    return Admission(send=len(counted) == len(keys))


class QueuedPasswordResetForm(PasswordResetForm):
    """Django's reset form (one-time link, the same answer for any address), its email
    queued in the outbox with a link on SITE_URL."""

    def send_mail(
        self,
        subject_template_name,
        email_template_name,
        context,
        from_email,
        to_email,
        html_email_template_name=None,
    ):
        path = reverse(
            "password_reset_confirm", kwargs={"uidb64": context["uid"], "token": context["token"]}
        )
        subject = "".join(render_to_string(subject_template_name, context).splitlines())
        emails.queue(
            SecurityNotice,
            to=to_email,
            subject=subject,
            text_template=email_template_name,
            context={"user": context["user"], "email": to_email, "link": site_url(path)},
            user=context["user"],
            kind=SecurityNotice.Kind.PASSWORD_RESET,
        )
