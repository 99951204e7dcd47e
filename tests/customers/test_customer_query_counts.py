"""A fixed number of queries for the customer list, the dashboard and every tab of the
customer card, however many customers, contacts, invoices, secrets and groups."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Membership
from accounts.roles import Role
from accounts.tenancy import system_code
from customers.models import (
    AccessGroup,
    ContactPerson,
    Customer,
    CustomerAssignment,
    Invoice,
    Secret,
)
from security.audit import record
from tests.conftest import make_user, work_in
from tests.helpers import EDITORS, restrict, table_body

# --- Query counts -------------------------------------------------------------------------


def count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


def populate(world, how_many, start, viewer, helpers):
    """`how_many` customers, each with a collector, three assignments (one the viewer),
    two invoices and a contact."""
    with system_code():
        for n in range(start, start + how_many):
            customer = Customer.objects.create(
                entity=world.a,
                number=f"Q-{n:04d}",
                name=f"Kunde {n:04d} AS",
                collector=helpers[n % len(helpers)],
            )
            for user in {viewer, *helpers[:2]}:
                CustomerAssignment.objects.create(entity=world.a, customer=customer, user=user)
            for i in range(2):
                Invoice.objects.create(
                    entity=world.a,
                    customer=customer,
                    number=f"I-{n:04d}-{i}",
                    issued_on="2025-03-01",
                    due_on="2025-04-01",
                    amount="250.00",
                )
            ContactPerson.objects.create(entity=world.a, customer=customer, name=f"P {n}")


VIEWERS = [(Role.ADMIN, []), (Role.SALES, ["sales"]), (Role.COLLECTOR, [])]


@pytest.mark.parametrize(
    ("role", "restricted"), VIEWERS, ids=[f"{r.value}-{bool(x)}" for r, x in VIEWERS]
)
def test_the_customer_list_costs_a_fixed_number_of_queries(world, client, role, restricted):
    viewer = world.users[role]
    helpers = [world.users[Role.COLLECTOR], world.users[Role.GUEST], world.users[Role.ADMIN]]
    restrict(world.a, restricted)
    populate(world, 3, 0, viewer, helpers)
    work_in(client, viewer, world.a)
    client.get("/")  # warm up: the first request after sign-in checks for a 2FA device
    urls = ["/customers/", "/customers/?q=Kunde&sort=-balance", "/"]
    for url in urls:
        client.get(url)
    small = {url: count_queries(client, url) for url in urls}
    populate(world, 57, 3, viewer, helpers)
    for url in urls:  # new customers drop the cached collector choices: read them again
        client.get(url)
    large = {url: count_queries(client, url) for url in urls}
    assert large == small
    assert "Kunde 0049 AS" in table_body(client.get("/customers/"))  # a full page of 50
    assert max(small.values()) <= 12


@pytest.mark.parametrize(
    ("role", "restricted"), VIEWERS, ids=[f"{r.value}-{bool(x)}" for r, x in VIEWERS]
)
def test_the_card_costs_a_fixed_number_of_queries(world, client, role, restricted):
    viewer = world.users[role]
    restrict(world.a, restricted)
    others = []
    for n in range(6):
        other = make_user(f"extra-{n}@acme.example")
        Membership.objects.create(user=other, entity=world.a, role=Role.SALES)
        others.append(other)

    def card(number, size):
        with system_code():
            customer = Customer.objects.create(
                entity=world.a, number=number, name=f"Card {number}", collector=others[0]
            )
            for user in [viewer, *others[:size]]:
                CustomerAssignment.objects.create(entity=world.a, customer=customer, user=user)
            groups = []
            for g in range(size):
                group = AccessGroup.objects.create(entity=world.a, name=f"G {number} {g}")
                group.members.set([viewer, *others])
                groups.append(group)
            for i in range(size * 2):
                ContactPerson.objects.create(entity=world.a, customer=customer, name=f"C{i}")
                Invoice.objects.create(
                    entity=world.a,
                    customer=customer,
                    number=f"{number}-{i}",
                    issued_on="2025-03-01",
                    due_on="2025-04-01",
                    amount="99.00",
                )
                secret = Secret(entity=world.a, customer=customer, title=f"S{i}")
                secret.set_body("x")
                secret.save()
                secret.groups.set(groups)
            return customer

    small, large = card("SMALL", 1), card("LARGE", 6)
    with system_code():
        for number in range(12):
            record_target = large if number % 2 else small
            record("customer.updated", entity=world.a, target=record_target, data={"n": number})
    work_in(client, viewer, world.a)
    client.get("/")  # warm up
    for tab in ("", "contacts/", "invoices/", "secrets/", "history/", "edit/"):
        if tab == "edit/" and role not in EDITORS:
            continue
        # A tab may set something up on first use (e.g. default consent purposes).
        client.get(f"/customers/{small.pk}/{tab}")
        few = count_queries(client, f"/customers/{small.pk}/{tab}")
        many = count_queries(client, f"/customers/{large.pk}/{tab}")
        assert many == few, f"{tab or 'overview'}: {few} queries for 1, {many} for 6"
        assert few <= 15, tab
