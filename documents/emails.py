"""Emails to customers: payment reminders and fresh links, rendered from templates
(templates/emails/), gated by consent, queued in the outbox (OutgoingEmail) inside the
caller's transaction and handed to the Celery worker once it commits. Delivery is
core's outbox pipeline (documents.outbox for this table)."""

from django.template.loader import render_to_string
from django.urls import reverse

from core import tasks as outbox_tasks
from core.http import site_url
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


def reminder_context(customer, contact, *, make_links=True, actor=None, request=None):
    """What the reminder templates show; with `make_links`, real links are created (on
    settings.SITE_URL, never the request's Host)."""
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
        page_url = links.url_for(token)
        consent_token = consent_page_token(contact, actor=actor, request=request)
        consent_url = site_url(reverse("consent-self-service", args=[consent_token]))
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
            pdf_url = links.url_for(token)
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
    text = render_to_string("emails/reminder.txt", context)
    html = render_to_string("emails/reminder.html", context)
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
    context = reminder_context(customer, contact, actor=actor, request=request)
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
    dispatch_after_commit(email)
    return email


def dispatch_after_commit(email):
    """Hand a queued email to the worker once the transaction that queued it commits (a
    rollback queues nothing): core's outbox pipeline."""
    outbox_tasks.dispatch_after_commit(email)


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
    url = links.url_for(token)
    text = f"Hello {link.contact.name},\n\nHere is a new link from {link.entity.name}:\n\n{url}\n"
    email = OutgoingEmail.objects.create(
        entity=link.entity,
        customer=link.customer,
        contact=link.contact,
        kind="link",
        to=link.contact.email,
        subject=f"Your new link from {link.entity.name}",
        text_body=text,
        html_body=render_to_string("emails/fresh_link.html", {"url": url, "link": link}),
    )
    dispatch_after_commit(email)
    return fresh
