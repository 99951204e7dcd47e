"""GDPR erasure of a customer: a preflight for manual review, then an atomic, irreversible
anonymisation that keeps the customer record, its invoices and amounts.

The anonymisation orchestrates: each app forgets what it holds through its own service
(customers, documents, the consent ledger here, the audit log in security); none writes
another app's tables. The customer row is locked for the whole anonymisation, and
`customers.services.create_invoice` locks it too, so a new invoice either waits and is
then refused, or comes first and makes the anonymisation refuse: never an anonymised
customer with a balance.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from consent.services import forget_contacts
from customers.models import ANONYM, ContactPerson, Customer, Invoice, Secret
from customers.selectors import ledger_balance
from customers.services import AnonymisationRefused, forget_customer
from documents import services as documents
from documents.services import supporting_documents
from security.audit import forget_about, record

__all__ = ["ANONYM", "AnonymisationRefused", "Preflight", "anonymise", "preflight"]


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
        documents=supporting_documents(customer).count(),
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
        contact_ids, secret_count = forget_customer(customer, now=now)
        forget_contacts(contact_ids)
        documents_deleted = documents.forget_customer(customer, now=now)
        forget_about(customer)
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
                "documents_deleted": documents_deleted,
            },
        )
    return customer
