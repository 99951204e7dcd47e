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
from security.audit import record


def save_customer(form, *, actor, request):
    """Save a CustomerForm and its assignments; audit which fields changed."""
    creating = form.instance.pk is None
    changed = [f for f in form.changed_data if f in form.Meta.fields]  # not "assigned"
    with transaction.atomic():
        customer = form.save()
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
    were withdrawn (a new address ends them)."""
    creating = form.instance.pk is None
    contact = form.save(commit=False)
    contact.customer = customer
    contact.entity = customer.entity
    with transaction.atomic():
        contact.save()
        withdrawn = 0
        if not creating and "email" in form.changed_data:
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
            data={"contact": contact.pk, "fields": form.changed_data, "links_withdrawn": withdrawn},
        )
    return contact, withdrawn


def create_secret(customer, *, title, body, groups, actor, request):
    with transaction.atomic():
        secret = Secret(customer=customer, entity=customer.entity, title=title, created_by=actor)
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
            data={"secret": secret.pk, "groups": sorted(g.name for g in groups)},
        )
    return secret


def reveal_secret(secret, *, actor, request):
    """The body, for one reader; every reveal is an audit event."""
    record(
        "secret.revealed",
        actor=actor,
        entity=secret.entity,
        target=secret.customer,
        request=request,
        data={"secret": secret.pk, "title": secret.title},
    )
    return secret.body


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
        customer = Customer.objects.select_for_update().get(pk=customer_id)
        if customer.anonymised_at:
            raise AnonymisationRefused("The customer is anonymised; it cannot get new invoices.")
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
