"""A secret's title stays with its access groups: the customer's History tab, the audit
log's event pages and its CSV export show it only to members of one of the secret's
groups; everyone else reads "a secret". Events recorded before the groups were logged
with them (a title and no groups) show the title to nobody."""

import csv
import io

import pytest

from accounts.roles import Role
from accounts.tenancy import system_code
from customers.models import AccessGroup, Customer, Secret
from security.audit import record
from security.models import AuditEvent
from tests.conftest import work_in

TITLE = "Bank details of Kari"
BODY = "Konto 1234.56.78903"
STAND_IN = "a secret"


@pytest.fixture
def scene(world, client):
    """A customer with a secret shared with "Legal" (the credit manager and the
    collector), created and revealed through the card by the credit manager. The admin
    (who reads the audit log) is in no group, the guest only in "Board"."""
    with system_code():
        customer = Customer.objects.create(entity=world.a, number="S-1", name="Hemmelig AS")
        legal = AccessGroup.objects.create(entity=world.a, name="Legal")
        legal.members.set([world.users[Role.CREDIT_MANAGER], world.users[Role.COLLECTOR]])
        board = AccessGroup.objects.create(entity=world.a, name="Board")
        board.members.set([world.users[Role.GUEST]])
    work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    created = client.post(
        f"/customers/{customer.pk}/secrets/",
        {"title": TITLE, "body": BODY, "groups": [legal.pk]},
    )
    assert created.status_code == 302
    with system_code():
        secret = Secret.objects.get(customer=customer)
    assert client.post(f"/customers/secrets/{secret.pk}/reveal/").status_code == 200
    client.logout()
    return customer, legal


def history(client, user, entity, customer):
    response = work_in(client, user, entity).get(f"/customers/{customer.pk}/history/")
    assert response.status_code == 200
    return response.content.decode()


def audit_pages(client, user, entity):
    """The event page of every secret event, and the CSV export, as `user` sees them."""
    work_in(client, user, entity)
    pages = []
    for event in AuditEvent.objects.filter(action__startswith="secret.").order_by("pk"):
        page = client.get(f"/audit/{event.pk}/")
        assert page.status_code == 200
        pages.append(page.content.decode())
    export = client.get("/audit/export.csv")
    assert export.status_code == 200
    content = b"".join(export.streaming_content).decode()
    rows = [row for row in csv.reader(io.StringIO(content)) if row[2].startswith("secret.")]
    return pages, rows


def test_members_of_the_secrets_group_read_its_title_in_the_history(world, client, scene):
    customer, _ = scene
    for role in (Role.CREDIT_MANAGER, Role.COLLECTOR):
        page = history(client, world.users[role], world.a, customer)
        assert "secret.created" in page and "secret.revealed" in page
        assert page.count(TITLE) == 2, role  # on both events
        assert BODY not in page


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MAIN_ADMIN, Role.GUEST, Role.SALES])
def test_others_who_see_the_customer_read_a_secret(world, client, scene, role):
    customer, _ = scene
    page = history(client, world.users[role], world.a, customer)
    assert "secret.created" in page and "secret.revealed" in page  # the events are there
    assert TITLE not in page
    assert f"title: {STAND_IN}" in page
    assert "groups: Legal" in page  # which groups may read it is no secret


def test_the_audit_log_shows_the_title_only_to_members(world, client, scene):
    admin = world.users[Role.ADMIN]
    pages, rows = audit_pages(client, admin, world.a)
    assert len(pages) == 2 and len(rows) == 2
    for page in pages:
        assert TITLE not in page
        assert STAND_IN in page
    for row in rows:
        assert TITLE not in ",".join(row)
        assert f'"title": "{STAND_IN}"' in row[6]
    # The group ids that decide are not shown as details.
    assert all("access groups" not in page for page in pages)

    # An admin who is a member of the secret's group reads it everywhere.
    _, legal = scene
    with system_code():
        legal.members.add(admin)
    pages, rows = audit_pages(client, admin, world.a)
    assert all(TITLE in page for page in pages)
    assert all(f'"title": "{TITLE}"' in row[6] for row in rows)


def test_leaving_the_group_hides_the_title_at_once(world, client, scene):
    customer, legal = scene
    collector = world.users[Role.COLLECTOR]
    assert TITLE in history(client, collector, world.a, customer)
    with system_code():
        legal.members.remove(collector)
    page = history(client, collector, world.a, customer)
    assert TITLE not in page and STAND_IN in page


def test_a_member_of_a_same_named_group_in_another_entity_does_not_read_it(world, client, scene):
    """Group ids, not names, decide; and a group of another entity never counts."""
    customer, legal = scene
    with system_code():
        other = AccessGroup.objects.create(entity=world.b, name="Legal")
        other.members.add(world.main_admin)
    pages, rows = audit_pages(client, world.main_admin, world.a)
    assert all(TITLE not in page for page in pages)
    assert TITLE not in history(client, world.main_admin, world.a, customer)


def test_events_recorded_with_a_title_and_no_groups_show_it_to_nobody(world, client, scene):
    customer, _ = scene
    with system_code():
        secret = Secret.objects.get(customer=customer)
    # As `reveal_secret` recorded it before the groups were logged with the title.
    record(
        "secret.revealed",
        actor=world.users[Role.CREDIT_MANAGER],
        entity=world.a,
        target=customer,
        data={"secret": secret.pk, "title": "Old title of the plan"},
    )
    for role in (Role.CREDIT_MANAGER, Role.ADMIN):
        page = history(client, world.users[role], world.a, customer)
        assert "Old title of the plan" not in page, role
    pages, rows = audit_pages(client, world.users[Role.ADMIN], world.a)
    assert all("Old title of the plan" not in page for page in pages)
    assert all("Old title of the plan" not in row[6] for row in rows)
