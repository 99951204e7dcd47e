"""One factory per model that an object URL can show: `OBJECT_FACTORIES[Model](entity)`
returns an object owned by `entity`. The tenant-isolation test fails for an object view
whose model has no factory here, so a new view cannot skip the check."""

from accounts.models import User
from accounts.tenancy import system_code
from customers.models import Customer
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


OBJECT_FACTORIES = {
    Customer: customer,
    AuditEvent: audit_event,
    User: person,
    AllowedNetwork: allowed_network,
}
