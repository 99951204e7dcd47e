"""Writes to documents (upload, delete), links emailed to a contact, the customer's actions on
its page and the outgoing emails; each audited.
`forget_customer` is this app's part of a GDPR erasure (consent.anonymisation)."""

import hashlib

from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import CharField, OuterRef, Subquery, Value
from django.db.models.functions import Cast, Concat
from django.template.loader import render_to_string
from django.utils import timezone

from customers import links
from customers.models import ANONYM, Customer, CustomerLink, Invoice
from documents import emails
from documents.models import Document, InvoiceAction, OutgoingEmail
from security.audit import record
from security.client_ip import client_ip


def store_upload(customer, data, *, actor, request):
    """Store a checked upload (UploadForm's cleaned data) as a document of `customer`."""
    upload = data["file"]
    content = upload.read()
    digest = hashlib.sha256(content).hexdigest()
    with transaction.atomic():
        document = Document(
            entity=customer.entity,
            customer=customer,
            invoice=data.get("invoice"),
            kind=data["kind"],
            original_name=upload.name[:200],
            content_type=data["content_type"],
            size=len(content),
            sha256=digest,
            uploaded_by=actor,
        )
        document.file.save(f"{digest[:16]}", ContentFile(content), save=False)
        document.save()
        record(
            "document.uploaded",
            actor=actor,
            entity=customer.entity,
            target=customer,
            request=request,
            data={
                "document": document.pk,
                "kind": document.kind,
                "size": document.size,
                "sha256": digest,
            },
        )
    return document


def send_links(customer, data, *, actor, request):
    """Email `data["contact"]` new links (the customer's page, a document, or every open
    invoice's PDF) through the outbox; returns how many links were made."""
    contact, what = data["contact"], data["what"]
    if what == "interactive":
        targets = [{"kind": CustomerLink.Kind.INTERACTIVE}]
    elif what == "document":
        targets = [{"kind": CustomerLink.Kind.DOCUMENT, "document": data["document"]}]
    else:
        targets = [
            {"kind": CustomerLink.Kind.INVOICE_PDF, "invoice": invoice}
            for invoice in emails.open_invoices(customer)
        ]
    made = [
        links.create_link(
            customer=customer,
            contact=contact,
            actor=actor,
            max_uses=data["max_uses"],
            request=request,
            **target,
        )
        for target in targets
    ]
    urls = [links.url_for(token) for _, token in made]  # on SITE_URL, not the Host
    context = {"contact": contact, "entity": customer.entity, "urls": urls}
    text = render_to_string("emails/document_links.txt", context)
    html = render_to_string("emails/document_links.html", context)
    email = OutgoingEmail.objects.create(
        entity=customer.entity,
        customer=customer,
        contact=contact,
        kind="links",
        to=contact.email,
        subject=f"Documents from {customer.entity.name}",
        text_body=text,
        html_body=html,
        created_by=actor,
    )
    emails.dispatch_after_commit(email)
    return len(made)


def delete_document(document, *, actor, request=None, now=None):
    """Delete a document: its links stop working, the file goes once the deletion commits."""
    name = document.file.name
    document_id = document.pk
    with transaction.atomic():
        CustomerLink.objects.filter(document=document, revoked_at__isnull=True).update(
            revoked_at=now or timezone.now()
        )
        document.delete()
        record(
            "document.deleted",
            actor=actor,
            entity=document.entity,
            target=Customer.objects.filter(pk=document.customer_id).first(),
            request=request,
            data={"document": document_id, "kind": document.kind},
        )
        transaction.on_commit(lambda: document.file.storage.delete(name))


def record_invoice_action(link, invoice, *, kind, promised_on, comment, request, now):
    """The customer promises a payment date or disputes an invoice on its page: the action
    is stored, the link's use counted and logged, and the event audited, all or nothing."""
    with transaction.atomic():
        InvoiceAction.objects.create(
            entity=link.entity,
            invoice=invoice,
            link=link,
            kind=kind,
            promised_on=promised_on,
            comment=comment,
        )
        links.use(
            link, ip=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT"), now=now
        )
        record(
            "invoice.promised" if kind == InvoiceAction.Kind.PROMISE else "invoice.disputed",
            entity=link.entity,
            target=link.customer,
            request=request,
            data={"invoice": invoice.number, "link": link.pk},
        )


def supporting_documents(customer):
    return Document.objects.filter(customer=customer, kind=Document.Kind.SUPPORTING)


def forget_customer(customer, *, now):
    """This app's part of anonymising `customer`: its supporting documents are deleted (the
    files once the transaction commits, so a rollback keeps them), what it wrote on its page
    and what its emails said and to whom are erased (one still queued is not sent), and the
    kept invoice PDFs lose file names that may carry a name. Returns how many documents went."""
    documents = supporting_documents(customer)
    files = [(d.file.storage, d.file.name) for d in documents]
    documents.delete()
    # What the customer wrote on their page (a dispute's comment can name anyone).
    InvoiceAction.objects.filter(invoice__customer=customer).update(comment="")
    # Emails keep what was sent when; not to whom or what it said.
    emails = OutgoingEmail.objects.filter(customer=customer)
    emails.filter(status=OutgoingEmail.Status.QUEUED).update(
        status=OutgoingEmail.Status.SKIPPED, reason="The customer was anonymised."
    )
    emails.update(to="", subject=ANONYM, text_body="", html_body="")
    # Invoice PDFs are kept with the invoices (bookkeeping).
    kept = Document.objects.filter(customer=customer)
    number = Invoice.objects.filter(pk=OuterRef("invoice_id")).values("number")[:1]
    kept.filter(invoice__isnull=False).update(
        original_name=Concat(Value("invoice-"), Subquery(number), Value(".pdf"))
    )
    kept.filter(invoice__isnull=True).update(
        original_name=Concat(Value("invoice-"), Cast("pk", CharField()), Value(".pdf"))
    )
    transaction.on_commit(lambda: [storage.delete(name) for storage, name in files])
    return len(files)
