"""Customer secrets: only members of a group a secret is shared with see and reveal it
(each reveal audited), never across entities; the body is never listed, logged,
exported or stored in clear; a secret is shared only with one's own groups; and key
rotation re-encrypts the secrets."""

import csv
import io
import json
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from accounts.roles import Role
from accounts.tenancy import system_code
from customers.models import (
    AccessGroup,
    Customer,
    Secret,
)
from security.crypto import DecryptionError, decrypt
from security.models import AuditEvent
from tests.conftest import work_in
from tests.helpers import text

# --- Secrets ------------------------------------------------------------------------------

BODY = "Konto 1234.56.78903, PIN 8264"


@pytest.fixture
def secrets_scene(world):
    """A customer with a secret shared with "Legal" (credit manager and collector); the
    admin and main admin are in no group, the guest only in "Board"."""
    with system_code():
        customer = Customer.objects.create(entity=world.a, number="S-1", name="Hemmelig AS")
        legal = AccessGroup.objects.create(entity=world.a, name="Legal")
        legal.members.set([world.users[Role.CREDIT_MANAGER], world.users[Role.COLLECTOR]])
        board = AccessGroup.objects.create(entity=world.a, name="Board")
        board.members.set([world.users[Role.GUEST]])
    return customer, legal, board


def create_secret_through_the_card(world, client, customer, legal):
    work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    response = client.post(
        f"/customers/{customer.pk}/secrets/",
        {"title": "Bank details", "body": BODY, "groups": [legal.pk]},
    )
    assert response.status_code == 302
    with system_code():
        return Secret.objects.get(customer=customer)


def test_only_members_see_and_reveal_a_secret(world, client, secrets_scene):
    customer, legal, _ = secrets_scene
    secret = create_secret_through_the_card(world, client, customer, legal)

    for role in (Role.CREDIT_MANAGER, Role.COLLECTOR):
        work_in(client, world.users[role], world.a)
        tab = client.get(f"/customers/{customer.pk}/secrets/")
        assert "Bank details" in text(tab)
        reveal = client.post(f"/customers/secrets/{secret.pk}/reveal/")
        assert reveal.status_code == 200
        assert BODY in text(reveal)
        assert reveal["Cache-Control"] == "no-store"

    for role in (Role.ADMIN, Role.MAIN_ADMIN, Role.GUEST, Role.SALES):
        work_in(client, world.users[role], world.a)
        tab = client.get(f"/customers/{customer.pk}/secrets/")
        assert tab.status_code == 200  # the customer itself is visible
        assert "Bank details" not in text(tab), role
        reveal = client.post(f"/customers/secrets/{secret.pk}/reveal/")
        assert reveal.status_code == 404, role
        assert BODY not in text(reveal) and "Bank details" not in text(reveal)

    revealed = AuditEvent.objects.filter(action="secret.revealed")
    assert revealed.count() == 2
    assert set(revealed.values_list("actor", flat=True)) == {
        world.users[Role.CREDIT_MANAGER].pk,
        world.users[Role.COLLECTOR].pk,
    }


def test_a_secret_of_another_entity_cannot_be_revealed(world, client, secrets_scene):
    with system_code():
        other = Customer.objects.create(entity=world.b, number="S-1", name="Sverige AB")
        group = AccessGroup.objects.create(entity=world.b, name="Legal")
        group.members.set([world.main_admin])
        secret = Secret(entity=world.b, customer=other, title="B title")
        secret.set_body(BODY)
        secret.save()
        secret.groups.set([group])
    # A member of the group, but working in entity a.
    work_in(client, world.main_admin, world.a)
    assert client.post(f"/customers/secrets/{secret.pk}/reveal/").status_code == 404
    # Positive control: in entity b it works.
    work_in(client, world.main_admin, world.b)
    assert BODY in text(client.post(f"/customers/secrets/{secret.pk}/reveal/"))


def test_the_body_is_never_listed_logged_exported_or_stored_in_clear(world, client, secrets_scene):
    customer, legal, _ = secrets_scene
    secret = create_secret_through_the_card(world, client, customer, legal)
    reveal = client.post(f"/customers/secrets/{secret.pk}/reveal/")
    assert BODY in text(reveal)  # positive control: the body does exist

    event = AuditEvent.objects.get(action="secret.revealed")
    assert event.actor == world.users[Role.CREDIT_MANAGER]
    assert event.target_id == str(customer.pk)
    assert event.data["secret"] == secret.pk
    assert "body" not in event.data
    for stored in AuditEvent.objects.all():
        assert BODY not in json.dumps(stored.data)
        assert "8264" not in json.dumps(stored.data)

    # The card's own pages.
    tab = client.get(f"/customers/{customer.pk}/secrets/")
    assert "Bank details" in text(tab) and BODY not in text(tab)
    history = client.get(f"/customers/{customer.pk}/history/")
    assert "secret.revealed" in text(history) and "secret.created" in text(history)
    assert "Bank details" in text(history)  # the title is logged ...
    assert BODY not in text(history) and "8264" not in text(history)  # ... the body never

    # The audit log, its event pages and its export.
    work_in(client, world.users[Role.ADMIN], world.a)
    log = client.get("/audit/")
    assert "secret.revealed" in text(log) and BODY not in text(log)
    for stored in AuditEvent.objects.filter(action__startswith="secret."):
        page = client.get(f"/audit/{stored.pk}/")
        assert page.status_code == 200
        assert "Bank details" in text(page) or "Legal" in text(page)
        assert BODY not in text(page)
    export = client.get("/audit/export.csv")
    assert export.status_code == 200
    content = b"".join(export.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(content)))
    assert any(row[2] == "secret.revealed" for row in rows[1:])
    assert BODY not in content and "8264" not in content

    # The database column.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT encrypted_body FROM {Secret._meta.db_table} WHERE id = %s", [secret.pk]
        )
        (column,) = cursor.fetchone()
    assert column and BODY not in column and "8264" not in column
    assert secret.body == BODY


def test_a_secret_can_be_shared_only_with_ones_own_groups(world, client, secrets_scene):
    customer, legal, board = secrets_scene
    admin = world.users[Role.ADMIN]
    work_in(client, admin, world.a)
    attempt = {"title": "Sneaky", "body": BODY, "groups": [legal.pk]}
    # In no group: no form at all, and a forged post saves nothing.
    page = client.get(f"/customers/{customer.pk}/secrets/")
    assert "You belong to no access group" in text(page)
    assert client.post(f"/customers/{customer.pk}/secrets/", attempt).status_code == 200
    # In "Board" only: "Legal" is not a choice.
    with system_code():
        board.members.add(admin)
    response = client.post(f"/customers/{customer.pk}/secrets/", attempt)
    assert response.status_code == 200
    assert "Select a valid choice" in text(response)
    with system_code():
        assert not Secret.objects.filter(customer=customer).exists()
    # Positive control: sharing with "Board" works.
    shared = {**attempt, "groups": [board.pk]}
    assert client.post(f"/customers/{customer.pk}/secrets/", shared).status_code == 302


def test_rotating_keys_re_encrypts_customer_secrets(world):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        with system_code():
            customer = Customer.objects.create(entity=world.a, number="R-1", name="Rot AS")
            secret = Secret(entity=world.a, customer=customer, title="Rotated")
            secret.set_body(BODY)
            secret.save()
    with system_code():
        before = Secret.objects.get(pk=secret.pk).encrypted_body
    with override_settings(FIELD_ENCRYPTION_KEYS=[new, old]):
        call_command("rotate_encryption_keys", stdout=StringIO())
    with system_code():
        after = Secret.objects.get(pk=secret.pk)
    assert after.encrypted_body != before
    with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
        assert decrypt(after.encrypted_body, after.binding()).decode() == BODY
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]), pytest.raises(DecryptionError):
        decrypt(after.encrypted_body, after.binding())
    with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
        assert after.body == BODY
