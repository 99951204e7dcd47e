"""Delivery of the outbox's emails (OutgoingEmail): each is claimed once, sent over SMTP,
and settled as sent, failed (permanent) or queued again (temporary: the task retries with
back-off). Once settled, the stored bodies keep no working link token."""

import re
import smtplib

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.tenancy import system_code
from documents.models import OutgoingEmail

# Network trouble of any kind (timeouts, refused connections, DNS, TLS) is temporary.
TRANSIENT_SMTP = (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError)
TOKEN_IN_URL = re.compile(r"/(l|c)/[^/\s\"'<>]+/")


def without_tokens(body):
    """The body with its link tokens masked: once an email is settled, the database keeps
    no working link (links themselves are stored only as hashes)."""
    return TOKEN_IN_URL.sub(lambda m: f"/{m.group(1)}/…/", body)


def settle(email_id, **fields):
    email = OutgoingEmail.objects.get(pk=email_id)
    OutgoingEmail.objects.filter(pk=email_id).update(
        text_body=without_tokens(email.text_body),
        html_body=without_tokens(email.html_body),
        **fields,
    )


def _again(email_id, reason):
    OutgoingEmail.objects.filter(pk=email_id).update(
        status=OutgoingEmail.Status.QUEUED, reason=f"Temporary failure: {reason}"
    )
    return "retry"


def _failed(email_id, reason):
    settle(email_id, status=OutgoingEmail.Status.FAILED, reason=reason)
    return "failed"


def deliver(email_id, now=None):
    """Send one queued email. Returns "sent", "retry", "failed" or "skipped" (nothing to
    do: already sent, being sent by another worker, or not queued)."""
    with system_code():
        with transaction.atomic():
            claimed = OutgoingEmail.objects.filter(
                pk=email_id, status=OutgoingEmail.Status.QUEUED
            ).update(
                status=OutgoingEmail.Status.SENDING,
                claimed_at=now or timezone.now(),
                attempts=F("attempts") + 1,
            )
        if not claimed:
            return "skipped"
        email = OutgoingEmail.objects.get(pk=email_id)
        message = EmailMultiAlternatives(
            email.subject,
            email.text_body,
            settings.DEFAULT_FROM_EMAIL,
            [email.to],
            headers={"Message-ID": f"<reminder-{email.pk}@{email.entity.slug}.guardrail>"},
        )
        message.attach_alternative(email.html_body, "text/html")
        try:
            message.send()
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if codes and all(400 <= code < 500 for code in codes):  # e.g. greylisting
                return _again(email.pk, codes[0])
            return _failed(email.pk, f"The recipient was refused ({', '.join(map(str, codes))}).")
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                return _again(email.pk, exc.smtp_code)
            return _failed(email.pk, f"Refused by the mail server ({exc.smtp_code}).")
        except TRANSIENT_SMTP as exc:
            return _again(email.pk, type(exc).__name__)
        except smtplib.SMTPException as exc:
            return _failed(email.pk, f"Refused: {type(exc).__name__}")
        settle(email.pk, status=OutgoingEmail.Status.SENT, sent_at=timezone.now(), reason="")
        return "sent"


def give_up(email_id):
    with system_code():
        if OutgoingEmail.objects.filter(pk=email_id, status=OutgoingEmail.Status.QUEUED).exists():
            settle(
                email_id,
                status=OutgoingEmail.Status.FAILED,
                reason="Gave up after repeated temporary failures.",
            )
