"""Security notices go through the one mail outbox: each is a row of security's outbox
table (SecurityNotice), queued in the caller's transaction, sent by core's email task once
that commits (never inside the request), its text rendered from templates/emails/; a
rollback sends nothing; a temporary SMTP failure leaves it queued for a retry."""

import smtplib
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.test import Client
from django.utils import timezone

from accounts.models import User
from accounts.roles import Role
from accounts.tenancy import system_code
from config.celery import app
from core import tasks as outbox_tasks
from customers.models import Customer
from documents import tasks as documents_tasks
from documents.models import OutgoingEmail
from security import twofactor
from security.models import SecurityNotice
from tests.conftest import make_user

WRONG = "Wrong-Battery-17!"
IP = "203.0.113.10"


def start():
    """A whole hour a week ahead (the users are created at the real time)."""
    return (timezone.now() + timedelta(days=7)).replace(minute=0, second=0, microsecond=0)


def fail_sign_ins(email, times):
    for _ in range(times):
        response = Client().post(
            "/accounts/login/", {"username": email, "password": WRONG}, REMOTE_ADDR=IP
        )
        assert response.status_code in (200, 429)


def lockout_text(user, until):
    """Today's wording of the lockout notice."""
    return (
        f"Hello {user},\n\nThere were 5 failed attempts to sign in to your account, so it is "
        f"blocked until {timezone.localtime(until):%Y-%m-%d %H:%M}. If this was not you, tell "
        "your administrator; consider changing your password once you can sign in again.\n"
    )


class FlakySend:
    """EmailMultiAlternatives.send raising `errors` one by one, then sending."""

    def __init__(self, monkeypatch, *errors):
        self.errors = list(errors)
        self.calls = 0
        original = EmailMultiAlternatives.send

        def send(message, *args, **kwargs):
            self.calls += 1
            if self.errors:
                raise self.errors.pop(0)
            return original(message, *args, **kwargs)

        monkeypatch.setattr(EmailMultiAlternatives, "send", send)


def notice(**fields):
    return SecurityNotice.objects.create(
        to="guest@acme.example",
        subject="Two-factor authentication is off",
        text_body="Hello guest,\n\nTwo-factor authentication was turned off.\n",
        html_body="",
        kind=SecurityNotice.Kind.TWO_FACTOR,
        **fields,
    )


def test_a_lockout_notice_is_queued_in_the_outbox_then_sent_by_the_task(
    db, django_capture_on_commit_callbacks
):
    user = make_user("aase@acme.example")
    User.objects.filter(pk=user.pk).update(full_name="Åse O'Brien & Co")
    user.refresh_from_db()
    t0 = start()
    with time_machine.travel(t0, tick=False):
        with django_capture_on_commit_callbacks() as after_commit:
            fail_sign_ins(user.email, 5)

        # Queued in the request's transaction; nothing sent inside the request.
        [row] = SecurityNotice.objects.all()
        assert mail.outbox == []
        assert (row.status, row.kind, row.user, row.entity, row.to, row.attempts) == (
            "queued",
            "lockout",
            user,
            None,
            user.email,
            0,
        )
        assert row.subject == "Your account was blocked after failed sign-ins"
        # Rendered from templates/emails/security/lockout.txt, not HTML-escaped.
        assert row.text_body == lockout_text(user, t0 + timedelta(hours=1))
        assert "Hello Åse O'Brien & Co," in row.text_body

        # Once the request's work commits, the task sends it.
        for callback in after_commit:
            callback()

    [message] = mail.outbox
    assert message.to == [user.email]
    assert message.subject == "Your account was blocked after failed sign-ins"
    assert message.body == lockout_text(user, t0 + timedelta(hours=1))
    assert message.alternatives == []  # a text-only notice
    assert message.extra_headers["Message-ID"] == f"<securitynotice-{row.pk}@guardrail>"
    row.refresh_from_db()
    assert (row.status, row.attempts, row.reason) == ("sent", 1, "")
    assert row.claimed_at is not None and row.sent_at is not None
    # Sent at most once: a second task for the same row does nothing.
    again = outbox_tasks.send_outbox_email.apply(args=[SecurityNotice._meta.label, row.pk])
    assert again.get() == "skipped"
    assert len(mail.outbox) == 1


@pytest.mark.django_db(transaction=True)
def test_a_notice_queued_in_a_transaction_that_rolls_back_is_never_sent():
    user = make_user("guest@acme.example")

    with pytest.raises(RuntimeError), transaction.atomic():
        twofactor.notify(user, "Two-factor authentication is off", "It was turned off.")
        assert SecurityNotice.objects.filter(user=user).exists()
        raise RuntimeError("the caller's work failed")

    assert not SecurityNotice.objects.exists()
    assert mail.outbox == []
    assert documents_tasks.requeue_stale(now=timezone.now() + timedelta(hours=1)) == 0
    assert mail.outbox == []

    # The same notice in a transaction that commits is sent (by the eager task) on commit.
    with transaction.atomic():
        twofactor.notify(user, "Two-factor authentication is off", "It was turned off.")
        assert mail.outbox == []
    [message] = mail.outbox
    assert message.body == f"Hello {user},\n\nIt was turned off.\n"
    assert SecurityNotice.objects.get().status == "sent"


def test_a_temporary_smtp_failure_leaves_the_notice_queued_for_a_retry(
    world, monkeypatch, django_capture_on_commit_callbacks
):
    admin, guest = world.users[Role.ADMIN], world.users[Role.GUEST]
    flaky = FlakySend(monkeypatch, smtplib.SMTPServerDisconnected("Connection unexpectedly closed"))

    with django_capture_on_commit_callbacks(execute=True):
        twofactor.remove_second_factor(
            guest, actor=admin, request=None, reason="Lost phone", entity=world.a
        )

    # The task ran after the commit, failed temporarily, and left the notice queued: the
    # action itself did not fail.
    [row] = SecurityNotice.objects.all()
    assert mail.outbox == []
    assert flaky.calls == 1
    assert (row.status, row.attempts, row.reason) == (
        "queued",
        1,
        "Temporary failure: SMTPServerDisconnected",
    )
    assert (row.kind, row.user, row.entity) == ("twofactor", guest, world.a)

    # The stale-email job hands it to the task again, which sends it once.
    assert documents_tasks.requeue_stale(now=timezone.now()) == 0  # not stale yet
    assert documents_tasks.requeue_stale(now=timezone.now() + timedelta(minutes=11)) == 1
    [message] = mail.outbox
    assert message.to == [guest.email]
    assert message.subject == "Two-factor authentication is off"
    assert f"An administrator ({admin.email}) reset two-factor authentication" in message.body
    row.refresh_from_db()
    assert (row.status, row.attempts, row.reason) == ("sent", 2, "")
    assert documents_tasks.requeue_stale(now=timezone.now() + timedelta(minutes=11)) == 0
    assert len(mail.outbox) == 1


def test_the_task_retries_a_notice_with_back_off_then_gives_up(db, monkeypatch):
    monkeypatch.setitem(app.conf, "task_eager_propagates", False)
    row = notice()
    errors = [smtplib.SMTPServerDisconnected("gone") for _ in range(outbox_tasks.MAX_RETRIES + 5)]
    FlakySend(monkeypatch, *errors)

    result = outbox_tasks.send_outbox_email.delay(SecurityNotice._meta.label, row.pk)

    assert result.get() == "failed"
    assert mail.outbox == []
    row.refresh_from_db()
    assert (row.status, row.reason) == ("failed", "Gave up after repeated temporary failures.")
    assert row.attempts == outbox_tasks.MAX_RETRIES + 1


def test_the_task_sends_a_notice_after_a_transient_error(db, monkeypatch):
    monkeypatch.setitem(app.conf, "task_eager_propagates", False)
    row = notice()
    flaky = FlakySend(monkeypatch, smtplib.SMTPServerDisconnected("Connection unexpectedly closed"))

    result = outbox_tasks.send_outbox_email.delay(SecurityNotice._meta.label, row.pk)

    assert result.get() == "sent"
    assert flaky.calls == 2
    assert len(mail.outbox) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("sent", 2)


def test_the_stale_email_job_requeues_both_outbox_tables(world, monkeypatch):
    handed = []
    monkeypatch.setattr(
        outbox_tasks.send_outbox_email, "delay", lambda label, pk: handed.append((label, pk))
    )
    old = timezone.now() - timedelta(minutes=30)
    stale_notice = notice(created_at=old)
    notice()  # queued just now: its task is not lost
    notice(created_at=old, status=SecurityNotice.Status.SENT)
    with system_code():
        customer = Customer.objects.create(entity=world.a, number="C-1", name="Fjellvik AS")
        from_customers = OutgoingEmail.objects.create(
            entity=world.a,
            customer=customer,
            to="kari@fjellvik.example",
            subject="Payment reminder",
            text_body="Please pay.",
            html_body="<p>Please pay.</p>",
            created_at=old,
        )

    assert documents_tasks.requeue_stale() == 2
    assert sorted(handed) == sorted(
        [
            ("documents.OutgoingEmail", from_customers.pk),
            ("security.SecurityNotice", stale_notice.pk),
        ]
    )
    entry = app.conf.beat_schedule["requeue-stale-emails"]
    assert entry["task"] == outbox_tasks.requeue_stale_emails_task.name
    assert entry["task"] in app.tasks


def test_the_task_delivers_only_outbox_tables(db):
    with pytest.raises(TypeError, match="not an outbox table"):
        outbox_tasks.send_outbox_email.apply(args=["accounts.User", 1]).get()
