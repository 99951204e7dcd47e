"""GDPR erasure of a customer: a preflight for manual review, then an atomic, irreversible
anonymisation that keeps the customer record, its invoices and amounts.

The customer row is locked for the whole anonymisation, and `create_invoice` locks it
too, so a new invoice either waits and is then refused, or comes first and makes the
anonymisation refuse: never an anonymised customer with a balance.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.db.models import CharField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from consent.models import ConsentEvent
from customers.models import ContactPerson, Customer, Invoice, Secret
from customers.selectors import ledger_balance
from documents.models import CustomerLink, Document, InvoiceAction, LinkUse, OutgoingEmail
from security.audit import record
from security.models import AuditEvent

ANONYM = "Anonym"


class AnonymisationRefused(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.message = message


@dataclass
class Mention:
    where: str
    url_name: str
    pk: int


@dataclass
class Preflight:
    balance: Decimal
    contacts: list
    secrets: int
    names: list
    documents: int = 0
    hidden_mentions: int = 0
    mentions: list = field(default_factory=list)

    @property
    def allowed(self):
        return self.balance == 0


def names_of(customer, contacts):
    names = [customer.name] + [c.name for c in contacts]
    return [n for n in dict.fromkeys(n.strip() for n in names) if len(n) >= 3]


def preflight(customer, visible):
    """What to check before anonymising. Mentions are listed only among the `visible`
    customers (the user's scope); mentions elsewhere are only counted, so a restricted
    user learns nothing about customers they may not see."""
    contacts = list(ContactPerson.objects.filter(customer=customer))
    names = names_of(customer, contacts)
    mentions = []
    hidden = 0
    if names:
        notes = Q()
        texts = Q()
        for name in names:
            notes |= Q(notes__icontains=name)
            texts |= Q(text__icontains=name)
        in_scope = Q(pk__in=visible.values("pk"))
        others = Customer.objects.filter(notes).exclude(pk=customer.pk)
        for other in others.filter(in_scope)[:50]:
            mentions.append(Mention(f"Notes of customer {other}", "customer-detail", other.pk))
        hidden += others.exclude(in_scope).count()
        contact_notes = ContactPerson.objects.filter(notes).select_related("customer")
        visible_ids = visible.values("pk")
        for contact in contact_notes.filter(customer__in=visible_ids)[:50]:
            mentions.append(
                Mention(
                    f"Notes of contact {contact.name} ({contact.customer})",
                    "customer-contacts",
                    contact.customer_id,
                )
            )
        hidden += contact_notes.exclude(customer__in=visible_ids).count()
        invoices = Invoice.objects.filter(texts).select_related("customer")
        for invoice in invoices.filter(customer__in=visible_ids)[:50]:
            mentions.append(
                Mention(
                    f"Text of invoice {invoice.number} ({invoice.customer})",
                    "customer-invoices",
                    invoice.customer_id,
                )
            )
        hidden += invoices.exclude(customer__in=visible_ids).count()
    return Preflight(
        balance=ledger_balance(customer),
        contacts=contacts,
        documents=Document.objects.filter(customer=customer, kind=Document.Kind.SUPPORTING).count(),
        secrets=Secret.objects.filter(customer=customer).count(),
        names=names,
        mentions=mentions,
        hidden_mentions=hidden,
    )


def anonymise(customer_id, *, confirmation, actor, request=None, now=None):
    """Anonymise one customer; raises AnonymisationRefused with a message to show."""
    now = now or timezone.now()
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer_id)
        if customer.anonymised_at:
            raise AnonymisationRefused("This customer is already anonymised.")
        if confirmation.strip() != customer.number:
            raise AnonymisationRefused(
                "Type the customer number exactly to confirm; nothing was changed."
            )
        balance = ledger_balance(customer)
        if balance != 0:
            raise AnonymisationRefused(
                f"The customer has an outstanding balance of {balance:.2f}. The balance must "
                "be zero before the customer can be anonymised; nothing was changed."
            )
        contacts = ContactPerson.objects.filter(customer=customer)
        contact_ids = list(contacts.values_list("pk", flat=True))
        Customer.objects.filter(pk=customer.pk).update(
            name=ANONYM,
            organisation_number="",
            address="",
            delivery_address="",
            email="",
            phone="",
            notes="",
            anonymised_at=now,
        )
        contacts.update(name=ANONYM, title="", email="", phone="", notes="")
        ConsentEvent.objects.filter(contact_id__in=contact_ids).update(ip=None, user_agent="")
        documents = Document.objects.filter(customer=customer, kind=Document.Kind.SUPPORTING)
        files = [(d.file.storage, d.file.name) for d in documents]
        documents.delete()
        CustomerLink.objects.filter(customer=customer, revoked_at__isnull=True).update(
            revoked_at=now
        )
        LinkUse.objects.filter(link__customer=customer).update(ip=None, user_agent="")
        # What the customer wrote on their page (a dispute's comment can name anyone).
        InvoiceAction.objects.filter(invoice__customer=customer).update(comment="")
        # Emails keep what was sent when; not to whom or what it said. One still queued
        # is not sent.
        emails = OutgoingEmail.objects.filter(customer=customer)
        emails.filter(status=OutgoingEmail.Status.QUEUED).update(
            status=OutgoingEmail.Status.SKIPPED, reason="The customer was anonymised."
        )
        emails.update(to="", subject=ANONYM, text_body="", html_body="")
        # Invoice PDFs are kept with the invoices (bookkeeping); their file names may
        # carry a name. (Supporting documents were deleted above.)
        kept = Document.objects.filter(customer=customer)
        number = Invoice.objects.filter(pk=OuterRef("invoice_id")).values("number")[:1]
        kept.filter(invoice__isnull=False).update(
            original_name=Concat(Value("invoice-"), Subquery(number), Value(".pdf"))
        )
        kept.filter(invoice__isnull=True).update(
            original_name=Concat(Value("invoice-"), Cast("pk", CharField()), Value(".pdf"))
        )
        secrets = Secret.objects.filter(customer=customer)
        secret_count = secrets.count()
        secrets.delete()
        about = AuditEvent.objects.filter(
            target_type="customers.customer", target_id=str(customer.pk)
        )
        about.erase_visitor_addresses()
        about.erase_personal_data()
        record(
            "customer.anonymised",
            actor=actor,
            entity=customer.entity,
            target=customer,
            target_label=ANONYM,
            request=request,
            now=now,
            data={
                "contacts": len(contact_ids),
                "secrets_deleted": secret_count,
                "documents_deleted": len(files),
            },
        )
        # Files go only once the database change is committed (a rollback keeps them).
        transaction.on_commit(lambda: [storage.delete(name) for storage, name in files])
    return customer


def create_invoice(customer_id, **fields):
    """Create an invoice, waiting for (and refusing after) an anonymisation in progress."""
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer_id)
        if customer.anonymised_at:
            raise AnonymisationRefused("The customer is anonymised; it cannot get new invoices.")
        return Invoice.objects.create(customer=customer, entity=customer.entity, **fields)
