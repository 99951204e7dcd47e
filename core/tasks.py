"""The one email task: it delivers an email of any outbox table, named by its model label
and id, retrying temporary SMTP failures with back-off; and the job that hands emails
whose task was lost to the worker again."""

import logging
from datetime import timedelta

from celery import shared_task
from celery.exceptions import Retry
from django.apps import apps
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from core import outbox
from core.models import OutboxEmail

MAX_RETRIES = 5
# Emails still queued this long after they were queued have lost their task.
STALE_AFTER = timedelta(minutes=10)
REQUEUE_BATCH = 500
# What publishing a task raises when the broker (Redis) cannot be reached.
BROKER_ERRORS = (OperationalError, RedisError, OSError)

logger = logging.getLogger("core.tasks")


def outbox_model(label):
    """The outbox table named by `label` ("app_label.ModelName"); refuses any other."""
    model = apps.get_model(label)
    if not issubclass(model, OutboxEmail):
        raise TypeError(f"{label} is not an outbox table (core.models.OutboxEmail).")
    return model


def outbox_models():
    """Every concrete outbox table of the installed apps."""
    return [m for m in apps.get_models() if issubclass(m, OutboxEmail)]


def deliver_with_retries(task, model, email_id):
    """The body of an email task (`task` is the bound task): deliver, and on a temporary
    failure retry with back-off -- 30 s, 60 s, 120 s, ... -- MAX_RETRIES times, then
    give up (the row ends failed)."""
    outcome = outbox.deliver(model, email_id)
    if outcome == "retry":
        if task.request.retries >= MAX_RETRIES:
            outbox.give_up(model, email_id)
            return "failed"
        raise task.retry(countdown=30 * 2**task.request.retries)
    return outcome


@shared_task(
    bind=True, name="core.tasks.send_outbox_email", acks_late=True, max_retries=MAX_RETRIES
)
def send_outbox_email(self, label, email_id):
    return deliver_with_retries(self, outbox_model(label), email_id)


def dispatch(model, email_id):
    """Hand an email to the worker (called after the queuing transaction commits). Returns
    False when the broker could not take it. Neither a temporary SMTP failure while tasks run
    in-process (development, no broker) nor a broker that cannot be reached (Redis down)
    fails the request that queued it: the email stays queued in the outbox for
    `requeue-stale-emails`."""
    try:
        send_outbox_email.delay(model._meta.label, email_id)
    except Retry:
        return True  # in-process delivery will be tried again
    except BROKER_ERRORS as exc:
        logger.warning(
            "Email %s %s stays queued, the broker did not answer: %s",
            model._meta.label,
            email_id,
            exc,
        )
        return False
    return True


def dispatch_after_commit(email):
    """Hand a queued email to the worker once the transaction that queued it commits (a
    rollback queues nothing, so nothing is sent)."""
    model, email_id = type(email), email.pk
    transaction.on_commit(lambda: dispatch(model, email_id))


def requeue_stale(now=None, older_than=None):
    """Hand queued emails of every outbox table whose task was lost (broker outage, eager
    mode after a temporary failure) to the worker again. Idempotent: delivery claims each
    row once. Returns how many were handed over."""
    now = now or timezone.now()
    cutoff = now - (older_than or STALE_AFTER)
    handed = 0
    for model in outbox_models():
        ids = list(
            outbox.rows(model)
            .filter(outbox.claimable(now), created_at__lt=cutoff, attempts__lt=MAX_RETRIES + 1)
            .order_by("created_at", "pk")
            .values_list("pk", flat=True)[:REQUEUE_BATCH]
        )
        for email_id in ids:
            handed += dispatch(model, email_id)
    return handed


@shared_task(name="core.tasks.requeue_stale_emails")
def requeue_stale_emails_task():
    return requeue_stale()
