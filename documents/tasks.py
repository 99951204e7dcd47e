"""Celery tasks for emails and link housekeeping: thin, taking ids."""

from datetime import timedelta

from celery import shared_task
from celery.exceptions import Retry
from django.utils import timezone

from accounts.tenancy import system_code
from customers.models import CustomerLink
from documents import outbox
from documents.models import OutgoingEmail

MAX_RETRIES = 5
# Link records (and their use logs) are kept this long after they stop working.
LINK_RETENTION = timedelta(days=365)


@shared_task(bind=True, name="documents.tasks.send_email", acks_late=True, max_retries=MAX_RETRIES)
def send_email_task(self, email_id):
    outcome = outbox.deliver(email_id)
    if outcome == "retry":
        if self.request.retries >= MAX_RETRIES:
            outbox.give_up(email_id)
            return "failed"
        # Back-off: 30 s, 60 s, 120 s, ...
        raise self.retry(countdown=30 * 2**self.request.retries)
    return outcome


def dispatch_email(email_id):
    """Hand an email to the worker (called after the queuing transaction commits). When
    tasks run in-process (development, no broker) a temporary SMTP failure must not fail
    the request that queued it: the email stays queued for `requeue-stale-emails`."""
    try:
        send_email_task.delay(email_id)
    except Retry:
        pass


def requeue_stale(now=None, older_than=None):
    """Hand queued emails whose task was lost (broker outage, eager mode after a temporary
    failure) to the worker again. Idempotent: delivery claims each row once."""
    now = now or timezone.now()
    cutoff = now - (older_than or timedelta(minutes=10))
    with system_code():
        ids = list(
            OutgoingEmail.objects.filter(
                status=OutgoingEmail.Status.QUEUED, created_at__lt=cutoff, attempts__lt=6
            ).values_list("pk", flat=True)[:500]
        )
    for email_id in ids:
        dispatch_email(email_id)
    return len(ids)


@shared_task(name="documents.tasks.requeue_stale_emails")
def requeue_stale_emails_task():
    return requeue_stale()


def purge_old_links(now=None):
    """Delete link records (with their use logs) made more than LINK_RETENTION plus the
    longest validity ago: no one can use them and their log is past keeping."""
    now = now or timezone.now()
    with system_code():
        deleted, _ = CustomerLink.objects.filter(
            created_at__lt=now - LINK_RETENTION - timedelta(days=365)
        ).delete()
    return deleted


@shared_task(name="documents.tasks.purge_old_links")
def purge_old_links_task():
    return purge_old_links()
