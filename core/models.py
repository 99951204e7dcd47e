"""The mail outbox every email of the product goes through.

`OutboxEmail` is abstract: each app that sends email keeps its own table of it (with its
own foreign keys: documents' OutgoingEmail to a customer's contact, security's
SecurityNotice to a staff user), and every table is delivered the same way -- queued in
the caller's transaction (core.emails), handed to the one Celery task once it commits
(core.tasks), sent at most once (core.outbox).
"""

from django.db import models
from django.utils import timezone


class OutboxEmail(models.Model):
    """An email queued for the Celery worker.

    Sent once: the worker claims the row (queued -> sending) before talking to SMTP and
    marks it sent after (a worker killed between the two can cause one duplicate, with the
    same Message-ID); a retry after a transient SMTP error puts it back to
    queued; a row left in `sending` by a worker that died mid-email is claimed again once
    its lease (core.outbox.LEASE) runs out, by the task or the requeue job."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Not sent"

    to = models.EmailField()
    subject = models.CharField(max_length=200)
    text_body = models.TextField()
    html_body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    reason = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    def __str__(self):
        return f"{self.subject} to {self.to}"

    def message_id(self):
        """The Message-ID header: the same for every attempt at this row."""
        return f"<{self._meta.model_name}-{self.pk}@guardrail>"

    def without_secrets(self, body):
        """`body` as the database keeps it once the email is settled (sent or failed):
        a table whose emails carry working link tokens masks them here."""
        return body
