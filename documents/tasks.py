"""Celery tasks for emails and link housekeeping: thin, taking ids."""

from datetime import timedelta

from celery import shared_task
from celery.exceptions import Retry
from django.utils import timezone

from accounts.tenancy import system_code
from customers.models import CustomerLink
from documents import emails

MAX_RETRIES = 5
# Link records (and their use logs) are kept this long after they stop working.
LINK_RETENTION = timedelta(days=365)


@shared_task(bind=True, name="documents.tasks.send_email", acks_late=True, max_retries=MAX_RETRIES)
def send_email_task(self, email_id):
    outcome = emails.deliver(email_id)
    if outcome == "retry":
        if self.request.retries >= MAX_RETRIES:
            emails.give_up(email_id)
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


@shared_task(name="documents.tasks.requeue_stale_emails")
def requeue_stale_emails_task():
    return emails.requeue_stale()


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
