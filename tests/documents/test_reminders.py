"""Payment reminders: gated by consent to "invoice_email", rendered with working links,
queued for Celery and delivered at most once (transient SMTP errors retried, permanent
ones failed, a row left in "sending" never resent); the preview page; and a real Celery
worker on Redis delivering to a local SMTP sink."""

import email
import re
import smtplib
import socket
import socketserver
import threading
import time
from datetime import date, timedelta
from decimal import Decimal
from email import policy as email_policy
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.test import Client, RequestFactory
from django.utils import timezone

from accounts.roles import Role
from accounts.tenancy import system_code, tenant_scope
from config.celery import app
from core import tasks as outbox_tasks
from customers.models import CustomerLink, Invoice
from documents import emails, outbox, tasks
from documents.models import OutgoingEmail
from tests.celery_worker import running_worker
from tests.conftest import work_in
from tests.helpers import VIEWERS, Book, audit, fresh, pdf_text

ROOT = Path(__file__).resolve().parents[2]
KARI = "kari@fjellvik.example"
NOT_SENT = "Not sent: Kari Nordmann has not consented to “Invoices and reminders by email”."
# The Book as the reminders need it: Ola (no email) on the customer and Per (email) on
# the other one, no customer of entity c, no consent given yet, F-1001 due 10 May.
SCENE = {
    "ola_and_per": True,
    "stranger": False,
    "kari_consents": False,
    "open1_due": date(2026, 5, 10),
}


# --- Helpers and fixtures --------------------------------------------------------------------


@pytest.fixture
def book(world):
    return Book(world, **SCENE)


def queued_email(book, to=KARI, **fields):
    with system_code():
        return OutgoingEmail.objects.create(
            entity=book.entity,
            customer=book.customer,
            contact=book.kari,
            to=to,
            subject="Payment reminder from Acme Norge AS",
            text_body="Please pay.",
            html_body="<p>Please pay.</p>",
            **fields,
        )


def send_reminder(client, customer, contact_pk, capture):
    with capture(execute=True):
        return client.post(f"/customers/{customer.pk}/reminder/", {"contact": contact_pk})


def reminder_links(text):
    """{invoice number: pdf url}, the page url and the consent url of a reminder's text."""
    text = text.replace("\r\n", "\n")
    pdfs = dict(re.findall(r"- Invoice (\S+), due [^\n]*\n\s+PDF: (\S+)", text))
    page = re.search(r"tell us if something is wrong:\n(\S+)", text).group(1)
    consent = re.search(r"Choose how we may contact you: (\S+)", text).group(1)
    return pdfs, page, consent


def path_of(url):
    parts = urlsplit(url)
    assert parts.netloc == "testserver", url
    return parts.path


def token_of(url):
    return path_of(url).split("/")[2]


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


# --- Sending a reminder ----------------------------------------------------------------------


def test_a_reminder_with_consent_is_sent_with_working_links(
    client, book, django_capture_on_commit_callbacks
):
    book.consent(book.kari)
    user = book.world.users[Role.COLLECTOR]
    book.editor(client)

    response = send_reminder(
        client, book.customer, book.kari.pk, django_capture_on_commit_callbacks
    )

    assert response.status_code == 302
    assert response["Location"] == f"/customers/{book.customer.pk}/documents/"
    with system_code():
        [row] = OutgoingEmail.objects.all()
        made = list(CustomerLink.objects.order_by("pk"))
    assert (row.status, row.to, row.kind, row.attempts) == ("sent", KARI, "reminder", 1)
    assert row.created_by == user and row.contact == book.kari and row.sent_at is not None
    assert [(link.kind, link.invoice) for link in made] == [
        ("interactive", None),
        ("consent", None),
        ("invoice_pdf", book.open1),
        ("invoice_pdf", book.open2),
    ]
    assert {(link.contact, link.created_by, link.max_uses) for link in made} == {
        (book.kari, user, None)
    }
    [event] = audit("email.queued", book.entity)
    assert event.data == {"email": row.pk, "kind": "reminder"}

    [message] = mail.outbox
    assert message.to == [KARI]
    assert message.subject == "Payment reminder from Acme Norge AS"
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    assert message.extra_headers["Message-ID"] == f"<reminder-{row.pk}@acme-norge.guardrail>"
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    text = message.body
    assert "Hello Kari Nordmann," in text
    assert "F-1000" not in text and "F-1000" not in html
    assert "Total outstanding: 1400.00" in text
    pdfs, page_url, consent_url = reminder_links(text)
    assert list(pdfs) == ["F-1001", "F-1002"]  # by due date
    assert "due 2026-05-10: 1000.00 NOK" in text and "due 2026-05-15: 400.00 NOK" in text
    for number, pdf_url in pdfs.items():
        assert re.search(
            rf"<td>{number}</td>.*?<a href=\"{re.escape(pdf_url)}\">PDF</a>", html, re.S
        ), number
    assert f'href="{page_url}"' in html and f'href="{consent_url}"' in html

    customer_client = Client()
    for number, pdf_url in pdfs.items():
        pdf = customer_client.post(path_of(pdf_url))
        assert pdf.status_code == 200, number
        assert pdf["Content-Type"] == "application/pdf"
        assert pdf["Content-Disposition"] == f'attachment; filename="invoice-{number}.pdf"'
        assert f"Invoice {number} (copy)" in pdf_text(pdf.content)
    page = customer_client.get(path_of(page_url), follow=True)
    assert page.status_code == 200
    assert "Open invoices for Fjellvik Transport AS" in page.content.decode()
    assert 'data-testid="invoice-F-1001"' in page.content.decode()
    consent_page = customer_client.get(path_of(consent_url), follow=True)
    assert consent_page.status_code == 200
    assert "How may Acme Norge AS contact you?" in consent_page.content.decode()
    assert "Hello Kari Nordmann." in consent_page.content.decode()

    tab = client.get(response["Location"]).content.decode()
    assert f"The reminder to {KARI} is on its way." in tab
    assert (
        "Payment reminder from Acme Norge AS → kari@fjellvik.example · <strong>Sent</strong>"
        in (tab)
    )


def test_no_working_token_stays_in_the_database_after_sending(
    client, book, django_capture_on_commit_callbacks
):
    book.consent(book.kari)
    book.editor(client)
    send_reminder(client, book.customer, book.kari.pk, django_capture_on_commit_callbacks)
    [message] = mail.outbox
    pdfs, page_url, _ = reminder_links(message.body)
    tokens = [token_of(page_url)] + [token_of(u) for u in pdfs.values()]

    with system_code():
        [row] = OutgoingEmail.objects.values()
    for token in tokens:
        assert token not in repr(row)


@pytest.mark.parametrize(
    "history",
    [[], [False], [True, False]],
    ids=["never-asked", "refused", "withdrawn"],
)
def test_no_consent_no_email_and_the_card_says_why(
    client, book, django_capture_on_commit_callbacks, history
):
    for granted in history:
        book.consent(book.kari, granted)
    book.consent(book.kari, True, code="newsletter")  # another purpose does not count
    book.editor(client)

    response = send_reminder(
        client, book.customer, book.kari.pk, django_capture_on_commit_callbacks
    )

    assert mail.outbox == []
    with system_code():
        [row] = OutgoingEmail.objects.all()
        assert not CustomerLink.objects.exists()
    assert (row.status, row.reason, row.text_body) == ("skipped", NOT_SENT, "")
    [event] = audit("email.skipped", book.entity)
    assert event.data == {"email": row.pk, "reason": "no consent"}
    tab = client.get(response["Location"])
    html = tab.content.decode()
    assert html.count(NOT_SENT) == 2  # the message, and the Emails list
    assert "<strong>Not sent</strong>" in html
    # A later delivery attempt of the skipped row sends nothing.
    assert outbox.deliver(row.pk) == "skipped"
    assert mail.outbox == []


def test_consent_of_another_contact_does_not_count(
    client, book, django_capture_on_commit_callbacks
):
    book.consent(book.per)
    book.editor(client)

    send_reminder(client, book.customer, book.kari.pk, django_capture_on_commit_callbacks)

    assert mail.outbox == []
    with system_code():
        assert OutgoingEmail.objects.get().status == "skipped"


def test_a_contact_without_email_is_refused(client, book, django_capture_on_commit_callbacks):
    book.editor(client)

    response = send_reminder(client, book.customer, book.ola.pk, django_capture_on_commit_callbacks)

    assert response.status_code == 302
    assert "Ola Hansen has no email address." in client.get(response["Location"]).content.decode()
    with system_code():
        assert not OutgoingEmail.objects.exists()
        assert not CustomerLink.objects.exists()
    assert mail.outbox == []


def test_a_customer_without_open_invoices_is_refused(
    client, book, django_capture_on_commit_callbacks
):
    book.consent(book.kari)
    with system_code():
        Invoice.objects.filter(pk=book.open1.pk).update(amount_paid=Decimal("1000.00"))
        Invoice.objects.filter(pk=book.open2.pk).update(amount_paid=Decimal("480.50"))
    book.editor(client)

    response = send_reminder(
        client, book.customer, book.kari.pk, django_capture_on_commit_callbacks
    )

    assert (
        "The customer has no open invoices to remind about."
        in client.get(response["Location"]).content.decode()
    )
    with system_code():
        assert not OutgoingEmail.objects.exists()
        assert not CustomerLink.objects.exists()
    assert mail.outbox == []


def test_a_contact_of_another_customer_is_refused(client, book, django_capture_on_commit_callbacks):
    book.consent(book.per)
    book.editor(client)

    response = send_reminder(client, book.customer, book.per.pk, django_capture_on_commit_callbacks)

    page = client.get(response["Location"]).content.decode()
    assert "Choose a contact person of this customer." in page
    with system_code():
        assert not OutgoingEmail.objects.exists()
    assert mail.outbox == []


@pytest.mark.parametrize("role", VIEWERS)
def test_viewers_may_not_send_reminders(client, book, role, django_capture_on_commit_callbacks):
    book.consent(book.kari)
    book.editor(client, role)

    response = send_reminder(
        client, book.customer, book.kari.pk, django_capture_on_commit_callbacks
    )

    assert response.status_code == 403
    assert mail.outbox == []


def test_another_entitys_customer_is_404(client, book, django_capture_on_commit_callbacks):
    book.consent(book.kari)
    work_in(client, book.world.b_admin, book.world.b)

    response = send_reminder(
        client, book.customer, book.kari.pk, django_capture_on_commit_callbacks
    )

    assert response.status_code == 404
    assert mail.outbox == []


# --- Delivery: at most once ------------------------------------------------------------------


def test_deliver_sends_once_however_often_it_is_called(book):
    row = queued_email(book)

    assert outbox.deliver(row.pk) == "sent"
    assert outbox.deliver(row.pk) == "skipped"
    assert tasks.send_email_task.apply(args=[row.pk]).get() == "skipped"

    assert len(mail.outbox) == 1
    row = fresh(row)
    assert (row.status, row.attempts, row.reason) == ("sent", 1, "")
    assert row.claimed_at is not None and row.sent_at is not None


def test_a_transient_smtp_error_is_retried_and_sends_once(book, monkeypatch):
    row = queued_email(book)
    flaky = FlakySend(monkeypatch, smtplib.SMTPServerDisconnected("Connection unexpectedly closed"))

    assert outbox.deliver(row.pk) == "retry"

    assert mail.outbox == []
    after_failure = fresh(row)
    assert (after_failure.status, after_failure.reason) == (
        "queued",
        "Temporary failure: SMTPServerDisconnected",
    )
    assert outbox.deliver(row.pk) == "sent"
    assert outbox.deliver(row.pk) == "skipped"
    assert flaky.calls == 2
    assert len(mail.outbox) == 1
    row = fresh(row)
    assert (row.status, row.attempts, row.reason) == ("sent", 2, "")


def test_the_task_retries_after_a_transient_error_and_sends_once(book, monkeypatch):
    # Eager tasks propagate by default, which would stop at the first Retry; let the
    # eager retry run as a worker would (without the countdown).
    monkeypatch.setitem(app.conf, "task_eager_propagates", False)
    row = queued_email(book)
    flaky = FlakySend(monkeypatch, smtplib.SMTPServerDisconnected("Connection unexpectedly closed"))

    result = tasks.send_email_task.delay(row.pk)

    assert result.get() == "sent"
    assert flaky.calls == 2
    assert len(mail.outbox) == 1
    assert fresh(row).status == "sent"
    assert tasks.send_email_task.delay(row.pk).get() == "skipped"
    assert len(mail.outbox) == 1


def test_a_4xx_reply_is_temporary(book, monkeypatch):
    row = queued_email(book)
    FlakySend(monkeypatch, smtplib.SMTPDataError(451, b"Try again later"))

    assert outbox.deliver(row.pk) == "retry"
    assert fresh(row).reason == "Temporary failure: 451"
    assert outbox.deliver(row.pk) == "sent"
    assert len(mail.outbox) == 1


@pytest.mark.parametrize(
    "error",
    [
        smtplib.SMTPDataError(550, b"Mailbox unavailable"),
        smtplib.SMTPSenderRefused(553, b"Not allowed", "no-reply@localhost"),
    ],
    ids=["550", "553"],
)
def test_a_permanent_5xx_marks_the_email_failed(book, monkeypatch, error):
    row = queued_email(book)
    flaky = FlakySend(monkeypatch, error)

    assert outbox.deliver(row.pk) == "failed"

    row = fresh(row)
    assert row.status == "failed"
    assert row.reason == f"Refused by the mail server ({error.smtp_code})."
    assert outbox.deliver(row.pk) == "skipped"
    assert tasks.send_email_task.apply(args=[row.pk]).get() == "skipped"
    assert flaky.calls == 1
    assert mail.outbox == []


def test_a_row_being_sent_within_its_lease_is_not_sent_twice(book):
    row = queued_email(
        book, status=OutgoingEmail.Status.SENDING, attempts=1, claimed_at=timezone.now()
    )

    assert outbox.deliver(row.pk) == "skipped"
    assert tasks.send_email_task.apply(args=[row.pk]).get() == "skipped"
    outbox.give_up(row.pk)

    assert mail.outbox == []
    row = fresh(row)
    assert (row.status, row.attempts) == ("sending", 1)


def test_a_row_left_sending_by_a_killed_worker_is_sent_once_its_lease_runs_out(book):
    """A worker killed between claiming a row and settling it: once the lease runs out the
    requeue job hands it over again and it is sent (with the same Message-ID, so a rare
    duplicate is recognisable), then settled with its tokens masked."""
    claimed = timezone.now() - timedelta(minutes=11)
    body = "Pay here: https://testserver/l/SecretToken123456/"
    row = queued_email(book, status=OutgoingEmail.Status.SENDING, attempts=1, claimed_at=claimed)
    OutgoingEmail.objects.with_scopes_disabled().filter(pk=row.pk).update(
        created_at=claimed, text_body=body
    )

    assert outbox_tasks.requeue_stale() == 1

    assert [m.to for m in mail.outbox] == [[KARI]]
    assert mail.outbox[0].extra_headers["Message-ID"] == fresh(row).message_id()
    row = fresh(row)
    assert (row.status, row.attempts) == ("sent", 2)
    assert "SecretToken123456" not in row.text_body


def test_deliver_of_an_unknown_id_does_nothing(db):
    assert outbox.deliver(987654) == "skipped"
    assert mail.outbox == []


def test_repeated_transient_errors_end_as_failed(book, monkeypatch):
    monkeypatch.setitem(app.conf, "task_eager_propagates", False)
    row = queued_email(book)
    errors = [smtplib.SMTPServerDisconnected("gone") for _ in range(tasks.MAX_RETRIES + 5)]
    FlakySend(monkeypatch, *errors)

    tasks.send_email_task.delay(row.pk)

    row = fresh(row)
    assert mail.outbox == []
    assert (row.status, row.reason) == ("failed", "Gave up after repeated temporary failures.")
    assert row.attempts == tasks.MAX_RETRIES + 1


def test_a_greylisted_recipient_is_retried(book, monkeypatch):
    row = queued_email(book)
    FlakySend(monkeypatch, smtplib.SMTPRecipientsRefused({KARI: (450, b"Greylisted")}))

    assert outbox.deliver(row.pk) == "retry"
    assert fresh(row).status == "queued"


def test_a_dns_failure_is_temporary(book, monkeypatch):
    row = queued_email(book)
    FlakySend(monkeypatch, socket.gaierror(-3, "Temporary failure in name resolution"))

    assert outbox.deliver(row.pk) == "retry"
    assert fresh(row).status == "queued"


# --- The preview -----------------------------------------------------------------------------


def test_the_preview_renders_without_making_links(client, book):
    book.consent(book.kari)
    book.editor(client, Role.CREDIT_MANAGER)

    response = client.get("/settings/reminder-preview/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Payment reminder from Acme Norge AS" in html
    assert "Shown for Fjellvik Transport AS" in html
    assert "F-1001" in html and "F-1002" in html and "F-1000" not in html
    assert "/l/" not in html and "/c/" not in html
    with system_code():
        assert not CustomerLink.objects.exists()
        assert not OutgoingEmail.objects.exists()
    assert audit("link.created", book.entity) == []
    assert mail.outbox == []


@pytest.mark.parametrize("role", VIEWERS)
def test_viewers_may_not_preview(client, book, role):
    book.editor(client, role)
    assert client.get("/settings/reminder-preview/").status_code == 403


def test_the_preview_without_customers(client, world):
    work_in(client, world.users[Role.ADMIN], world.a)

    response = client.get("/settings/reminder-preview/")

    assert response.status_code == 200
    assert "Add a customer with a contact person to see a preview." in response.content.decode()


# --- A real worker and a real SMTP conversation ----------------------------------------------


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for Django's backend: no TLS, no auth; messages kept in memory."""

    timeout = 10
    MAX_MESSAGE = 5 * 1024 * 1024

    def reply(self, text):
        self.wfile.write(text.encode("ascii") + b"\r\n")

    def handle(self):
        self.reply("220 sink.test ESMTP")
        sender, recipients = None, []
        while True:
            line = self.rfile.readline(2048)
            if not line:
                return
            command = line.decode("ascii", "replace").strip()
            verb = command[:4].upper()
            if verb == "EHLO":
                self.wfile.write(b"250-sink.test\r\n250 8BITMIME\r\n")
            elif verb == "HELO":
                self.reply("250 sink.test")
            elif verb == "MAIL":
                sender, recipients = command[10:].strip(" <>"), []
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(command[8:].strip(" <>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                data, size = [], 0
                while True:
                    chunk = self.rfile.readline(65536)
                    size += len(chunk)
                    if not chunk or size > self.MAX_MESSAGE:
                        return
                    if chunk in (b".\r\n", b".\n"):
                        break
                    data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                self.server.received(sender, recipients, b"".join(data))
                self.reply("250 OK: queued")
            elif verb in ("RSET", "NOOP"):
                sender, recipients = (None, []) if verb == "RSET" else (sender, recipients)
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Command not implemented")


class SMTPSink(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _SMTPHandler)
        self.messages = []
        self._lock = threading.Lock()

    def received(self, sender, recipients, data):
        with self._lock:
            self.messages.append(
                (sender, recipients, email.message_from_bytes(data, policy=email_policy.default))
            )

    def wait_for(self, count, seconds=60):
        deadline = time.monotonic() + seconds
        while len(self.messages) < count:
            assert time.monotonic() < deadline, (
                f"the sink got {len(self.messages)} message(s) within {seconds} s, not {count}"
            )
            time.sleep(0.1)
        return list(self.messages)


@pytest.fixture
def smtp_sink():
    sink = SMTPSink()
    thread = threading.Thread(target=sink.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    try:
        yield sink
    finally:
        sink.shutdown()
        sink.server_close()
        thread.join(10)


@pytest.fixture
def worker(transactional_db, smtp_sink):
    """A worker sending email over SMTP to the sink (config.settings switches to SMTP
    when EMAIL_HOST is set)."""
    smtp = {
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_sink.server_address[1]),
        "EMAIL_USE_TLS": "false",
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        "EMAIL_TIMEOUT_SECONDS": "10",
    }
    with running_worker(smtp) as queue:
        yield queue


def wait_for_status(row, status, seconds=60):
    deadline = time.monotonic() + seconds
    while fresh(row).status != status:
        assert time.monotonic() < deadline, f"the row is {fresh(row).status!r}, not {status!r}"
        time.sleep(0.1)
    return fresh(row)


@pytest.mark.skipif(
    not settings.REDIS_URL or "postgresql" not in settings.DATABASES["default"]["ENGINE"],
    reason="needs DATABASE_URL=postgres://... and REDIS_URL: a real Celery worker subprocess "
    "shares the test database and listens on Redis",
)
@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_a_real_worker_delivers_a_reminder_once_over_smtp(worker, world, smtp_sink, monkeypatch):
    book = Book(world, **SCENE)
    book.consent(book.kari)
    sent_tasks = []

    # Emails are handed to core's one outbox task, by model label and id.
    def to_worker(label, email_id):
        sent_tasks.append((label, email_id))
        return app.send_task("core.tasks.send_outbox_email", args=[label, email_id], queue=worker)

    monkeypatch.setattr(outbox_tasks.send_outbox_email, "delay", to_worker)
    request = RequestFactory().post("/customers/1/reminder/", HTTP_HOST="testserver")
    request.user = book.world.users[Role.COLLECTOR]

    with tenant_scope(book.entity):
        row = emails.queue_reminder(book.customer, book.kari, actor=request.user, request=request)
    # The same email delivered twice (a duplicate message, a redelivery after a crash),
    # here by the name documents' email task has always had.
    app.send_task("documents.tasks.send_email", args=[row.pk], queue=worker)

    [(sender, recipients, message)] = smtp_sink.wait_for(1)
    row = wait_for_status(row, "sent")
    assert sent_tasks == [("documents.OutgoingEmail", row.pk)]
    assert (sender, recipients) == (settings.DEFAULT_FROM_EMAIL, [KARI])
    assert message["Subject"] == "Payment reminder from Acme Norge AS"
    assert message["To"] == KARI
    assert message["Message-ID"] == f"<reminder-{row.pk}@acme-norge.guardrail>"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    pdfs, page_url, _ = reminder_links(text)
    assert list(pdfs) == ["F-1001", "F-1002"]
    assert f'href="{page_url}"' in html
    assert Client().get(path_of(page_url), follow=True).status_code == 200
    assert Client().post(path_of(pdfs["F-1002"])).status_code == 200

    # Send the task twice more, then a sentinel email: the solo worker takes its queue in
    # order, so once the sentinel arrives the duplicates have been handled.
    app.send_task("documents.tasks.send_email", args=[row.pk], queue=worker)
    app.send_task("documents.tasks.send_email", args=[row.pk], queue=worker)
    sentinel = queued_email(book, to="sentinel@acme.example")
    app.send_task("documents.tasks.send_email", args=[sentinel.pk], queue=worker)

    received = smtp_sink.wait_for(2)
    # The sink has each message before its task marks it sent, so a duplicate the worker
    # wrongly sent would be in the sink by the time the sentinel is marked sent.
    wait_for_status(sentinel, "sent")
    assert [r for _, r, _ in smtp_sink.messages] == [[KARI], ["sentinel@acme.example"]]
    assert len(received) == 2
    row = fresh(row)
    assert (row.status, row.attempts) == ("sent", 1)
