"""Celery tasks for emails and link housekeeping: thin, taking ids.

Emails go through the one outbox pipeline of core (core.tasks.send_outbox_email);
`send_email_task` keeps the name this app's email task has always had, so a task queued
under that name (before a deploy, or by an operator) is still delivered the same way."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from accounts.tenancy import system_code
from core import tasks as outbox_tasks
from customers.models import CustomerLink
from documents.models import OutgoingEmail

MAX_RETRIES = outbox_tasks.MAX_RETRIES
# Link records (and their use logs) are kept this long after they stop working.
LINK_RETENTION = timedelta(days=365)


@shared_task(bind=True, name="documents.tasks.send_email", acks_late=True, max_retries=MAX_RETRIES)
def send_email_task(self, email_id):
    return outbox_tasks.deliver_with_retries(self, OutgoingEmail, email_id)


def dispatch_email(email_id):
    """Hand an email to the worker (called after the queuing transaction commits)."""
    outbox_tasks.dispatch(OutgoingEmail, email_id)


def requeue_stale(now=None, older_than=None):
    """Hand queued emails whose task was lost to the worker again -- of every outbox
    table: the customers' (OutgoingEmail) and security's notices (SecurityNotice)."""
    return outbox_tasks.requeue_stale(now=now, older_than=older_than)


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
