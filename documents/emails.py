"""Payment reminders: rendered from templates, gated by consent, queued for the Celery
worker, and delivered at most once."""

import re
import smtplib

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.tenancy import system_code
from customers import links
from customers.links import consent_page_token
from customers.models import CustomerLink
from documents.consent_check import email_consent
from documents.models import OutgoingEmail
from security.audit import record


class ReminderRefused(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.message = message


def open_invoices(customer):
    return [i for i in customer.invoices.order_by("due_on", "pk") if i.outstanding > 0]


def reminder_context(customer, contact, *, absolute, make_links=True, actor=None, request=None):
    """What the reminder templates show; with `make_links`, real links are created."""
    invoices = open_invoices(customer)
    rows = []
    page_url = consent_url = "#"
    if make_links:
        _, token = links.create_link(
            customer=customer,
            kind=CustomerLink.Kind.INTERACTIVE,
            contact=contact,
            actor=actor,
            request=request,
        )
        page_url = absolute(reverse("customer-link", args=[token]))
        consent_token = consent_page_token(contact, actor=actor, request=request)
        consent_url = absolute(reverse("consent-self-service", args=[consent_token]))
    for invoice in invoices:
        pdf_url = "#"
        if make_links:
            _, token = links.create_link(
                customer=customer,
                kind=CustomerLink.Kind.INVOICE_PDF,
                contact=contact,
                invoice=invoice,
                actor=actor,
                request=request,
            )
            pdf_url = absolute(reverse("customer-link", args=[token]))
        rows.append({"invoice": invoice, "pdf_url": pdf_url})
    return {
        "entity": customer.entity,
        "customer": customer,
        "contact": contact,
        "rows": rows,
        "total": sum((r["invoice"].outstanding for r in rows), start=0),
        "page_url": page_url,
        "consent_url": consent_url,
    }


def render_reminder(context):
    subject = f"Payment reminder from {context['entity'].name}"
    text = render_to_string("documents/email/reminder.txt", context)
    html = render_to_string("documents/email/reminder.html", context)
    return subject, text, html


def queue_reminder(customer, contact, *, actor, request):
    """Queue a reminder to `contact`, or record why it is not sent. Returns the row."""
    if contact.email == "":
        raise ReminderRefused(f"{contact.name} has no email address.")
    if not open_invoices(customer):
        raise ReminderRefused("The customer has no open invoices to remind about.")
    granted, purpose = email_consent(contact)
    if not granted:
        name = purpose.name if purpose else "reminders by email"
        email = OutgoingEmail.objects.create(
            entity=customer.entity,
            customer=customer,
            contact=contact,
            to=contact.email,
            subject="Payment reminder",
            text_body="",
            html_body="",
            created_by=actor,
            status=OutgoingEmail.Status.SKIPPED,
            reason=f"Not sent: {contact.name} has not consented to “{name}”.",
        )
        record(
            "email.skipped",
            actor=actor,
            entity=customer.entity,
            target=customer,
            request=request,
            data={"email": email.pk, "reason": "no consent"},
        )
        return email
    context = reminder_context(
        customer, contact, absolute=request.build_absolute_uri, actor=actor, request=request
    )
    subject, text, html = render_reminder(context)
    email = OutgoingEmail.objects.create(
        entity=customer.entity,
        customer=customer,
        contact=contact,
        to=contact.email,
        subject=subject,
        text_body=text,
        html_body=html,
        created_by=actor,
    )
    record(
        "email.queued",
        actor=actor,
        entity=customer.entity,
        target=customer,
        request=request,
        data={"email": email.pk, "kind": "reminder"},
    )
    from documents.tasks import dispatch_email

    email_id = email.pk
    transaction.on_commit(lambda: dispatch_email(email_id))
    return email


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


def requeue_stale(now=None, older_than=None):
    """Hand queued emails whose task was lost (broker outage, eager mode after a temporary
    failure) to the worker again. Idempotent: delivery claims each row once."""
    from datetime import timedelta

    from documents.tasks import dispatch_email

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


def send_fresh_link(link, *, request):
    """A new link like `link`, emailed to its contact's address on file."""
    fresh, token = links.create_link(
        customer=link.customer,
        kind=link.kind,
        contact=link.contact,
        document=link.document,
        invoice=link.invoice,
        max_uses=link.max_uses,
        request=request,
    )
    url = request.build_absolute_uri(reverse("customer-link", args=[token]))
    text = f"Hello {link.contact.name},\n\nHere is a new link from {link.entity.name}:\n\n{url}\n"
    email = OutgoingEmail.objects.create(
        entity=link.entity,
        customer=link.customer,
        contact=link.contact,
        kind="link",
        to=link.contact.email,
        subject=f"Your new link from {link.entity.name}",
        text_body=text,
        html_body=render_to_string("documents/email/fresh_link.html", {"url": url, "link": link}),
    )
    from documents.tasks import dispatch_email

    email_id = email.pk
    transaction.on_commit(lambda: dispatch_email(email_id))
    return fresh
