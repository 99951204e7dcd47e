"""One factory per model that an object URL can show: `OBJECT_FACTORIES[Model](entity)`
returns an object owned by `entity`. The tenant-isolation test fails for an object view
whose model has no factory here, so a new view cannot skip the check."""

from accounts.models import User
from accounts.tenancy import system_code
from consent.models import DataProcessor
from customers.models import AccessGroup, ContactPerson, Customer, CustomerLink, Invoice, Secret
from documents.models import Document
from security.models import AllowedNetwork, AuditEvent


def customer(entity, number="C-1", name="Fjellvik Transport AS"):
    with system_code():
        return Customer.objects.create(entity=entity, number=number, name=name)


def audit_event(entity):
    from security.audit import record

    return record("test.event", entity=entity, data={"note": "isolation"})


def person(entity):
    from accounts.models import Membership, User
    from accounts.roles import Role

    user = User.objects.create_user(f"person-{entity.slug}@example.com", password=None)
    Membership.objects.create(user=user, entity=entity, role=Role.GUEST)
    return user


def allowed_network(entity):
    from security.models import AllowedNetwork, SecurityPolicy

    policy, _ = SecurityPolicy.objects.get_or_create(entity=entity)
    return AllowedNetwork.objects.create(policy=policy, network="203.0.113.0/24", label="Office")


def contact(entity):
    from customers.models import ContactPerson

    owner = customer(entity, number=f"C-{ContactPerson.objects.with_scopes_disabled().count() + 1}")
    with system_code():
        return ContactPerson.objects.create(entity=entity, customer=owner, name="Kari Nordmann")


def access_group(entity):
    from customers.models import AccessGroup

    with system_code():
        return AccessGroup.objects.create(entity=entity, name="Legal")


def secret(entity):
    """A secret shared with a group holding every member of `entity` (so its admin, the
    positive control, may read it)."""
    from accounts.models import Membership
    from customers.models import Secret

    group = access_group(entity)
    owner = customer(entity, number="S-1")
    with system_code():
        group.members.set(Membership.objects.filter(entity=entity).values_list("user", flat=True))
        item = Secret(entity=entity, customer=owner, title="Payment plan")
        item.set_body("Agreed by phone")
        item.save()
        item.groups.set([group])
    return item


def invoice(entity):
    import datetime
    from decimal import Decimal

    from customers.models import Invoice

    owner = customer(entity, number="I-1")
    with system_code():
        return Invoice.objects.create(
            entity=entity,
            customer=owner,
            number="F-1001",
            issued_on=datetime.date(2026, 1, 5),
            due_on=datetime.date(2026, 1, 19),
            amount=Decimal("100.00"),
        )


def data_processor(entity):
    from consent.models import DataProcessor

    with system_code():
        return DataProcessor.objects.create(
            entity=entity, name="Mailfabrikken AS", purpose="Email delivery", country="Norway"
        )


def document(entity):
    from django.core.files.base import ContentFile

    from documents.models import Document

    owner = customer(entity, number="D-1")
    with system_code():
        item = Document(
            entity=entity,
            customer=owner,
            kind=Document.Kind.SUPPORTING,
            original_name="contract.pdf",
            content_type="application/pdf",
            size=9,
            sha256="0" * 64,
        )
        item.file.save("contract", ContentFile(b"%PDF-1.4\n"), save=False)
        item.save()
    return item


def customer_link(entity):
    from customers.links import create_link
    from customers.models import CustomerLink

    owner = customer(entity, number="L-1")
    with system_code():
        return create_link(customer=owner, kind=CustomerLink.Kind.INTERACTIVE)[0]


OBJECT_FACTORIES = {
    Customer: customer,
    AuditEvent: audit_event,
    User: person,
    AllowedNetwork: allowed_network,
    ContactPerson: contact,
    AccessGroup: access_group,
    Secret: secret,
    Invoice: invoice,
    DataProcessor: data_processor,
    Document: document,
    CustomerLink: customer_link,
}
