"""Writes to documents, the customer's actions on its page and the outgoing emails.
`forget_customer` is this app's part of a GDPR erasure (consent.anonymisation)."""

from django.db import transaction
from django.db.models import CharField, OuterRef, Subquery, Value
from django.db.models.functions import Cast, Concat

from customers.models import ANONYM, Invoice
from documents.models import Document, InvoiceAction, OutgoingEmail


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
