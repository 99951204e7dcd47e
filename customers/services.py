"""Writes to customers, contacts, invoices, assignments, secrets, access groups and links;
each audited. `forget_customer` is this app's part of a GDPR erasure (consent.anonymisation)."""

from django.db import transaction
from django.utils import timezone

from customers import csv_import
from customers.models import (
    ANONYM,
    ContactPerson,
    Customer,
    CustomerAssignment,
    CustomerLink,
    Invoice,
    LinkUse,
    Secret,
)
from security.audit import READER_GROUPS, record
from security.crypto import DecryptionError
from security.unreadable import report_unreadable

# What an edit begun before an anonymisation and saved after it reads.
ANONYMISED_MEANWHILE = "This customer was anonymised meanwhile; nothing was saved."


def locked_customer(customer_id, *, refusal=ANONYMISED_MEANWHILE):
    """The customer row, locked until the caller's transaction ends, or
    AnonymisationRefused(`refusal`) once it is anonymised.

    Every write to an existing customer or its contacts (the forms here, an API's writes,
    new invoices) starts with it inside its transaction: `consent.anonymisation.anonymise`
    locks the same row, so a write either comes first and the anonymisation then erases
    it, or waits, sees `anonymised_at` and refuses. The CSV import locks and checks the
    same way (`csv_import.load_known(lock=True)`)."""
    customer = Customer.objects.select_for_update().filter(pk=customer_id).first()
    if customer is None:
        raise AnonymisationRefused("This customer no longer exists; nothing was saved.")
    if customer.anonymised_at is not None:
        raise AnonymisationRefused(refusal)
    return customer


def save_customer(form, *, actor, request):
    """Save a CustomerForm and its assignments; audit which fields changed. Only the
    changed fields are written (`ChangesOnly`), so a form built before another write (an
    anonymisation above all) cannot put back what it showed. Raises AnonymisationRefused
    when the customer was anonymised after the form was built."""
    creating = form.instance.pk is None
    changed = [f for f in form.changed_data if f in form.Meta.fields]  # not "assigned"
    with transaction.atomic():
        if not creating:
            locked_customer(form.instance.pk)
        customer = form.save(commit=False)
        if creating:
            customer.save()
        elif changed:
            customer.save(update_fields=changed)
        wanted = {user.pk for user in form.cleaned_data["assigned"]}
        current = set(customer.assignments.values_list("user_id", flat=True))
        CustomerAssignment.objects.filter(customer=customer, user_id__in=current - wanted).delete()
        CustomerAssignment.objects.bulk_create(
            [
                CustomerAssignment(entity=customer.entity, customer=customer, user_id=user_id)
                for user_id in wanted - current
            ]
        )
        data = {"fields": changed}
        if wanted != current:
            data["assigned_added"] = sorted(wanted - current)
            data["assigned_removed"] = sorted(current - wanted)
        record(
            "customer.created" if creating else "customer.updated",
            actor=actor,
            entity=customer.entity,
            target=customer,
            request=request,
            data=data,
        )
    return customer


def save_contact(form, customer, *, actor, request):
    """Save and audit a contact; returns it and how many links to its old email address
    were withdrawn (a new address ends them). Writes only the changed fields; raises
    AnonymisationRefused when the customer was anonymised after the form was built."""
    creating = form.instance.pk is None
    changed = list(form.changed_data)
    with transaction.atomic():
        locked_customer(customer.pk)
        contact = form.save(commit=False)
        contact.customer = customer
        contact.entity = customer.entity
        if creating:
            contact.save()
        elif changed:
            contact.save(update_fields=changed)
        withdrawn = 0
        if not creating and "email" in changed:
            # Links emailed to the old address must not keep working for whoever reads it.
            withdrawn = CustomerLink.objects.filter(
                contact=contact, revoked_at__isnull=True
            ).update(revoked_at=timezone.now())
        record(
            "customer.contact.created" if creating else "customer.contact.updated",
            actor=actor,
            entity=customer.entity,
            target=customer,
            request=request,
            data={"contact": contact.pk, "fields": changed, "links_withdrawn": withdrawn},
        )
    return contact, withdrawn


def create_secret(customer, *, title, body, groups, actor, request):
    """Add a secret to `customer` (locked and re-checked: an anonymised customer gets no
    secret, even one begun on a page opened before the anonymisation)."""
    with transaction.atomic():
        customer = locked_customer(customer.pk)
        secret = Secret(customer=customer, entity=customer.entity, title=title, created_by=actor)
        # Inserted first, then the body encrypted bound to the new row's id (Secret.save).
        secret.set_body(body)
        secret.save()
        secret.groups.set(groups)
        # The title and groups are logged; the body never is.
        record(
            "secret.created",
            actor=actor,
            entity=customer.entity,
            target=customer,
            request=request,
            data=secret_details(secret, groups),
        )
    return secret


def secret_details(secret, groups):
    """What the audit log keeps of a secret: its id, title and groups (names to read, ids
    under `security.audit.READER_GROUPS`, so that only the groups' members are shown the
    title: `security.audit.details_for`)."""
    groups = sorted(groups, key=lambda group: group.name)
    return {
        "secret": secret.pk,
        "title": secret.title,
        "groups": [group.name for group in groups],
        READER_GROUPS: [group.pk for group in groups],
    }


UNREADABLE_SECRET = "This secret cannot be read; the administrators have been told."


class UnreadableSecret(Exception):
    """The secret's stored body does not decrypt in its row: reported, nothing shown."""

    message = UNREADABLE_SECRET


def reveal_secret(secret, *, actor, request):
    """The body, for one reader; every reveal is an audit event. A body that does not
    decrypt in this row (copied from another, changed, or under a removed key) raises
    UnreadableSecret after a `security.decryption_failed` event."""
    try:
        body = secret.body
    except DecryptionError as error:
        report_unreadable(
            error, actor=actor, entity=secret.entity, target=secret.customer, request=request
        )
        raise UnreadableSecret(UNREADABLE_SECRET) from None
    record(
        "secret.revealed",
        actor=actor,
        entity=secret.entity,
        target=secret.customer,
        request=request,
        data=secret_details(secret, secret.groups.all()),
    )
    return body


def save_access_group(form, *, actor, request):
    creating = form.instance.pk is None
    before = set() if creating else set(form.instance.members.values_list("pk", flat=True))
    group = form.save()
    after = set(group.members.values_list("pk", flat=True))
    record(
        "access_group.created" if creating else "access_group.updated",
        actor=actor,
        entity=group.entity,
        target=group,
        request=request,
        data={"added": sorted(after - before), "removed": sorted(before - after)},
    )
    return group


def import_customers(rows, entity, *, expected, scope, actor, request):
    """Import previewed CSV rows: all of them in one transaction, or none (raises
    csv_import.ImportRefused when the customers changed since the preview); audited."""
    with transaction.atomic():
        counts = csv_import.run_import(rows, entity, expected=expected, scope=scope)
        record(
            "customer.imported",
            actor=actor,
            entity=entity,
            request=request,
            data={"rows": len(rows), **counts},
        )
    return counts


class AnonymisationRefused(Exception):
    """An anonymisation, or a write an anonymised customer refuses, with the message to show."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


def create_invoice(customer_id, **fields):
    """Create an invoice, waiting for (and refusing after) an anonymisation in progress: the
    customer row is locked, as the anonymisation locks it."""
    with transaction.atomic():
        customer = locked_customer(
            customer_id, refusal="The customer is anonymised; it cannot get new invoices."
        )
        return Invoice.objects.create(customer=customer, entity=customer.entity, **fields)


def forget_customer(customer, *, now):
    """This app's part of anonymising `customer` (locked by the caller): the customer's and
    its contacts' personal data, its links (withdrawn) and their access log's visitors, its
    secrets (deleted). Returns the contacts' ids and how many secrets went."""
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
    CustomerLink.objects.filter(customer=customer, revoked_at__isnull=True).update(revoked_at=now)
    LinkUse.objects.filter(link__customer=customer).update(ip=None, user_agent="")
    secrets = Secret.objects.filter(customer=customer)
    secret_count = secrets.count()
    secrets.delete()
    return contact_ids, secret_count
