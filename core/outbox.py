"""Delivery of outbox emails (any concrete core.models.OutboxEmail): each is claimed once,
sent over SMTP, and settled as sent, failed (permanent) or queued again (temporary: the
task retries with back-off). Once settled, the stored bodies keep no secret the table
masks (`OutboxEmail.without_secrets`: documents' link tokens).

The worker delivers by id, whatever the tenant of the row: rows are read through the
model's base manager, which no tenant scope filters."""

import smtplib
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.models import OutboxEmail

Status = OutboxEmail.Status
# A worker that claimed a row and has not settled it this long after died mid-email (an
# SMTP call times out after EMAIL_TIMEOUT_SECONDS, 10 s by default): the row is claimed
# again. The stable Message-ID makes the rare duplicate recognisable.
LEASE = timedelta(minutes=5)
# Network trouble of any kind (timeouts, refused connections, DNS, TLS) is temporary.
TRANSIENT_SMTP = (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError)


def rows(model):
    if not (isinstance(model, type) and issubclass(model, OutboxEmail)):
        raise TypeError(f"{model!r} is not an outbox table (core.models.OutboxEmail).")
    return model._base_manager


def settle(model, email_id, **fields):
    email = rows(model).get(pk=email_id)
    rows(model).filter(pk=email_id).update(
        text_body=email.without_secrets(email.text_body),
        html_body=email.without_secrets(email.html_body),
        **fields,
    )


def _again(model, email_id, reason):
    rows(model).filter(pk=email_id).update(
        status=Status.QUEUED, reason=f"Temporary failure: {reason}"
    )
    return "retry"


def _failed(model, email_id, reason):
    settle(model, email_id, status=Status.FAILED, reason=reason)
    return "failed"


def message_for(email):
    message = EmailMultiAlternatives(
        email.subject,
        email.text_body,
        settings.DEFAULT_FROM_EMAIL,
        [email.to],
        headers={"Message-ID": email.message_id()},
    )
    if email.html_body:
        message.attach_alternative(email.html_body, "text/html")
    return message


def claimable(now):
    """The rows a worker may claim: queued, or left `sending` past their lease by a worker
    that died mid-email."""
    return Q(status=Status.QUEUED) | Q(status=Status.SENDING, claimed_at__lt=now - LEASE)


def deliver(model, email_id, now=None):
    """Send one queued email of `model`. Returns "sent", "retry", "failed" or "skipped"
    (nothing to do: already sent, being sent by another worker, or not queued)."""
    now = now or timezone.now()
    with transaction.atomic():
        claimed = (
            rows(model)
            .filter(claimable(now), pk=email_id)
            .update(
                status=Status.SENDING,
                claimed_at=now,
                attempts=F("attempts") + 1,
            )
        )
    if not claimed:
        return "skipped"
    email = rows(model).get(pk=email_id)
    try:
        message_for(email).send()
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if codes and all(400 <= code < 500 for code in codes):  # e.g. greylisting
            return _again(model, email.pk, codes[0])
        return _failed(
            model, email.pk, f"The recipient was refused ({', '.join(map(str, codes))})."
        )
    except smtplib.SMTPResponseException as exc:
        if 400 <= exc.smtp_code < 500:
            return _again(model, email.pk, exc.smtp_code)
        return _failed(model, email.pk, f"Refused by the mail server ({exc.smtp_code}).")
    except TRANSIENT_SMTP as exc:
        return _again(model, email.pk, type(exc).__name__)
    except smtplib.SMTPException as exc:
        return _failed(model, email.pk, f"Refused: {type(exc).__name__}")
    settle(model, email.pk, status=Status.SENT, sent_at=timezone.now(), reason="")
    return "sent"


def give_up(model, email_id):
    """After the last retry: a row still queued is failed for good."""
    if rows(model).filter(pk=email_id, status=Status.QUEUED).exists():
        settle(
            model,
            email_id,
            status=Status.FAILED,
            reason="Gave up after repeated temporary failures.",
        )
