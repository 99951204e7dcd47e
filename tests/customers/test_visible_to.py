"""One visibility method: `visible_to(scope)` on the queryset of every customer-owned model
keeps exactly the rows of the customers the scope may see, and an unknown kind of scope
refuses instead of showing everything."""

import pytest

from accounts.roles import Role
from accounts.tenancy import system_code, tenant_scope
from customers.models import (
    ContactPerson,
    Customer,
    CustomerAssignment,
    CustomerLink,
    Invoice,
    Secret,
)
from customers.selectors import Scope
from documents.models import Document
from tests import factories

OWNED = {
    Customer: factories.customer,
    ContactPerson: factories.contact,
    Invoice: factories.invoice,
    Secret: factories.secret,
    CustomerLink: factories.customer_link,
    Document: factories.document,
}


def customer_of(obj):
    return obj if isinstance(obj, Customer) else obj.customer


def same_for(obj, customer):
    """A row like `obj`, owned by another customer of the same entity."""
    if isinstance(obj, Customer):
        return customer
    with system_code():
        twin = type(obj).objects.get(pk=obj.pk)
        twin.pk = None
        twin.customer = customer
        if isinstance(twin, Invoice):
            twin.number = "F-9999"
        if isinstance(twin, CustomerLink):
            twin.token_hash = "f" * 64
        twin.save()
    return twin


@pytest.mark.parametrize("model", OWNED, ids=lambda m: m.__name__)
@pytest.mark.parametrize("kind", ["managed", "assigned"])
def test_a_restricted_scope_sees_only_its_customers_rows(world, model, kind):
    user = world.users[Role.COLLECTOR if kind == "managed" else Role.SALES]
    mine = OWNED[model](world.a)
    theirs = same_for(mine, factories.customer(world.a, number="X-9", name="Someone Else AS"))
    with system_code():
        owner = customer_of(mine)
        if kind == "managed":
            Customer.objects.filter(pk=owner.pk).update(collector=user)
        else:
            CustomerAssignment.objects.create(entity=world.a, customer=owner, user=user)
    scope = Scope(kind, user.pk, Role.COLLECTOR if kind == "managed" else Role.SALES)
    with tenant_scope(world.a):
        seen = set(model.objects.visible_to(scope).values_list("pk", flat=True))
        everything = set(model.objects.values_list("pk", flat=True))
    assert mine.pk in seen
    assert theirs.pk in everything - seen
    # Every row the scope sees belongs to the customer it manages or is assigned.
    with system_code():
        owners = {customer_of(row).pk for row in model.objects.filter(pk__in=seen)}
    assert owners == {owner.pk}


@pytest.mark.parametrize("model", OWNED, ids=lambda m: m.__name__)
def test_the_scope_all_sees_every_row_of_the_entity_and_none_of_another(world, model):
    ours = OWNED[model](world.a)
    other = OWNED[model](world.c)
    with tenant_scope(world.a):
        seen = set(
            model.objects.visible_to(Scope("all", 0, Role.ADMIN)).values_list("pk", flat=True)
        )
    assert ours.pk in seen and other.pk not in seen


def test_an_unknown_scope_refuses_instead_of_showing_everything(world):
    factories.customer(world.a)
    with tenant_scope(world.a), pytest.raises(ValueError, match="Unknown visibility scope"):
        Customer.objects.visible_to(Scope("everyone", 0, Role.GUEST))
