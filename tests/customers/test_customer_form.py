"""Creating and editing customers: phone numbers stored in E.164 (impossible ones
refused), the customer number unique within the entity only, people choices from the
current entity only, and assignments saved and audited."""

import pytest

from accounts.roles import Role
from accounts.tenancy import system_code
from customers.models import (
    Customer,
    CustomerAssignment,
)
from security.models import AuditEvent
from tests.conftest import work_in
from tests.helpers import customer_form, text

# --- Creating and editing customers -------------------------------------------------------


def new_customer(**overrides):
    data = {"number": "N-1", "name": "Nordlys Handel AS", "phone": "", "assigned": []}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("22 33 44 55", "+4722334455"),
        ("+47 22 33 44 55", "+4722334455"),
        ("0047 22334455", "+4722334455"),
        ("912 34 567", "+4791234567"),
        ("+46 8 123 456 78", "+46812345678"),
        ("", ""),
    ],
)
def test_phone_numbers_are_stored_in_e164(world, client, typed, stored):
    work_in(client, world.users[Role.ADMIN], world.a)
    response = client.post("/customers/new/", new_customer(phone=typed))
    assert response.status_code == 302, text(response)
    with system_code():
        customer = Customer.objects.get(entity=world.a, number="N-1")
    assert customer.phone == stored
    assert response["Location"] == f"/customers/{customer.pk}/"


@pytest.mark.parametrize("typed", ["12", "not a phone", "+47 1234 5678 9999"])
def test_impossible_phone_numbers_are_refused(world, client, typed):
    work_in(client, world.users[Role.ADMIN], world.a)
    response = client.post("/customers/new/", new_customer(phone=typed))
    assert response.status_code == 200
    assert 'class="field-error"' in text(response)
    with system_code():
        assert not Customer.objects.filter(number="N-1").exists()


def test_a_customer_number_is_unique_within_the_entity_only(world, client):
    with system_code():
        Customer.objects.create(entity=world.a, number="N-1", name="First AS")
    work_in(client, world.users[Role.ADMIN], world.a)
    response = client.post("/customers/new/", new_customer(number=" N-1 "))
    assert response.status_code == 200
    assert "Customer number N-1 is already used in this entity." in text(response)
    with system_code():
        assert Customer.objects.filter(number="N-1").count() == 1

    # The same number in entity b is fine.
    work_in(client, world.main_admin, world.b)
    assert client.post("/customers/new/", new_customer(number="N-1")).status_code == 302
    with system_code():
        assert Customer.objects.filter(number="N-1", entity=world.b).count() == 1

    # Saving a customer under its own number is not a clash.
    work_in(client, world.users[Role.ADMIN], world.a)
    with system_code():
        first = Customer.objects.get(entity=world.a, number="N-1")
        form = customer_form(first, name="First Renamed AS")
    assert client.post(f"/customers/{first.pk}/edit/", form).status_code == 302


def test_people_choices_offer_only_users_of_the_current_entity(world, client):
    work_in(client, world.users[Role.ADMIN], world.a)
    page = text(client.get("/customers/new/"))
    for user in world.users.values():
        assert user.email in page
    for stranger in (world.outsider, world.b_admin, world.nobody):
        assert stranger.email not in page

    for stranger in (world.outsider, world.b_admin):
        for field, value in (("collector", stranger.pk), ("assigned", [stranger.pk])):
            response = client.post("/customers/new/", new_customer(**{field: value}))
            assert response.status_code == 200, (stranger, field)
            assert "Select a valid choice" in text(response)
    with system_code():
        assert not Customer.objects.exists()
        assert not CustomerAssignment.objects.exists()


def test_assignments_are_saved_and_audited(world, client):
    admin = world.users[Role.ADMIN]
    sales, guest = world.users[Role.SALES], world.users[Role.GUEST]
    work_in(client, admin, world.a)
    response = client.post(
        "/customers/new/",
        new_customer(collector=world.users[Role.COLLECTOR].pk, assigned=[sales.pk, guest.pk]),
    )
    assert response.status_code == 302
    with system_code():
        customer = Customer.objects.get(number="N-1")
        assert customer.collector == world.users[Role.COLLECTOR]
        assert set(customer.assignments.values_list("user_id", flat=True)) == {sales.pk, guest.pk}
    created = AuditEvent.objects.get(action="customer.created")
    assert created.data["assigned_added"] == sorted([sales.pk, guest.pk])
    assert "collector" in created.data["fields"]

    sales_admin = world.users[Role.SALES_ADMIN]
    with system_code():
        form = customer_form(customer, assigned=[guest.pk, sales_admin.pk])
    assert client.post(f"/customers/{customer.pk}/edit/", form).status_code == 302
    updated = AuditEvent.objects.get(action="customer.updated")
    assert updated.actor == admin and updated.entity == world.a
    assert updated.target_id == str(customer.pk)
    assert updated.data["assigned_added"] == [sales_admin.pk]
    assert updated.data["assigned_removed"] == [sales.pk]
    with system_code():
        assert set(customer.assignments.values_list("user_id", flat=True)) == {
            guest.pk,
            sales_admin.pk,
        }
    # The card lists who is assigned.
    card = text(client.get(f"/customers/{customer.pk}/"))
    assert "sales-admin" in card and "guest" in card
