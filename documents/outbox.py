"""Delivery of the customers' outbox emails (OutgoingEmail): core.outbox's delivery for
this table -- claimed once, sent over SMTP, settled as sent, failed (permanent) or queued
again (temporary: the task retries with back-off). Once settled, the stored bodies keep no
working link token (OutgoingEmail.without_secrets)."""

from core import outbox
from documents.models import OutgoingEmail


def without_tokens(body):
    """The body with its link tokens masked."""
    return OutgoingEmail().without_secrets(body)


def deliver(email_id, now=None):
    """Send one queued email. Returns "sent", "retry", "failed" or "skipped" (nothing to
    do: already sent, being sent by another worker, or not queued)."""
    return outbox.deliver(OutgoingEmail, email_id, now=now)


def give_up(email_id):
    outbox.give_up(OutgoingEmail, email_id)
