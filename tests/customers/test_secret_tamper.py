"""A secret's stored body is bound to its row and entity: a body copied from another
entity's (or the same entity's) secret, a changed byte or a body under a removed key is
not shown. The reveal page says "This secret cannot be read; the administrators have been
told.", answers 200, never shows another row's text, and the failure is in the audit log
for the admins (table and row, never the stored value)."""

import json

import pytest
from cryptography.fernet import Fernet
from django.test import override_settings

from accounts.roles import Role
from accounts.tenancy import system_code
from customers.models import AccessGroup, Customer, Secret
from security.models import AuditEvent
from tests.conftest import work_in

UNREADABLE = "This secret cannot be read; the administrators have been told."
MINE = "Agreed by phone: 3 instalments"
THEIRS = "Konto 9876.54.32109, PIN 5150"


def make_secret(entity, title, body, members):
    with system_code():
        customer = Customer.objects.create(
            entity=entity, number=f"T-{Secret.objects.count()}", name=f"{title} AS"
        )
        group, _ = AccessGroup.objects.get_or_create(entity=entity, name="Legal")
        group.members.add(*members)
        secret = Secret(entity=entity, customer=customer, title=title)
        secret.set_body(body)
        secret.save()
        secret.groups.set([group])
    return secret


def stored_body(secret):
    return Secret._base_manager.values_list("encrypted_body", flat=True).get(pk=secret.pk)


def put_body(secret, value):
    Secret._base_manager.filter(pk=secret.pk).update(encrypted_body=value)


@pytest.fixture
def reader(world, client):
    """The credit manager of entity a, working there, in the group of `mine`."""
    work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    return client


@pytest.fixture
def mine(world):
    return make_secret(world.a, "Payment plan", MINE, [world.users[Role.CREDIT_MANAGER]])


def reveal(client, secret):
    response = client.post(f"/customers/secrets/{secret.pk}/reveal/")
    assert response.status_code == 200
    return response.content.decode()


def assert_refused(page, secret, *, reason, reveals_before=0):
    """The page says the secret cannot be read and shows no body; one failure event
    names the table, column and row (not the stored value); no further reveal logged."""
    assert UNREADABLE in page
    assert THEIRS not in page and MINE not in page and "5150" not in page
    assert "This reveal was logged" not in page
    event = AuditEvent.objects.get(action="security.decryption_failed")
    assert (event.data["table"], event.data["column"], event.data["row"]) == (
        "customers_secret",
        "encrypted_body",
        secret.pk,
    )
    assert reason in event.data["reason"]
    assert event.entity_id == secret.entity_id
    assert event.target_id == str(secret.customer_id)
    assert stored_body(secret) not in json.dumps(event.data)
    # Nothing was revealed this time, so no reveal is logged for it.
    assert AuditEvent.objects.filter(action="secret.revealed").count() == reveals_before
    return event


def test_a_body_copied_from_another_entitys_secret_is_not_shown(world, reader, mine):
    theirs = make_secret(world.c, "Their plan", THEIRS, [world.outsider])
    assert MINE in reveal(reader, mine)  # positive control
    put_body(mine, stored_body(theirs))

    page = reveal(reader, mine)

    assert_refused(page, mine, reason="copied", reveals_before=1)


def test_a_body_copied_from_another_secret_of_the_same_entity_is_not_shown(world, reader, mine):
    other = make_secret(world.a, "Other plan", THEIRS, [world.users[Role.CREDIT_MANAGER]])
    assert THEIRS in reveal(reader, other)  # positive control: readable where it belongs
    put_body(mine, stored_body(other))

    assert_refused(reveal(reader, mine), mine, reason="copied", reveals_before=1)


def test_a_changed_byte_is_not_shown(reader, mine):
    value = stored_body(mine)
    last = value[-2]
    put_body(mine, value[:-2] + ("A" if last != "A" else "B") + value[-1])

    assert_refused(reveal(reader, mine), mine, reason="changed")


def test_a_body_under_a_key_no_longer_configured_is_not_shown(reader, mine):
    with override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        page = reveal(reader, mine)

    assert_refused(page, mine, reason="key not in FIELD_ENCRYPTION_KEYS")


def test_an_unbound_legacy_body_is_not_shown(world, reader, mine):
    """A Fernet token (the format before binding) decrypts in any row, so none is read."""
    keys = [Fernet.generate_key().decode()]
    with override_settings(FIELD_ENCRYPTION_KEYS=keys):
        put_body(mine, Fernet(keys[0].encode()).encrypt(THEIRS.encode()).decode())
        page = reveal(reader, mine)

    assert_refused(page, mine, reason="unbound")


def test_the_admins_find_the_failure_in_the_audit_log(world, client, reader, mine):
    theirs = make_secret(world.c, "Their plan", THEIRS, [world.outsider])
    put_body(mine, stored_body(theirs))
    reveal(reader, mine)

    work_in(client, world.users[Role.ADMIN], world.a)
    log = client.get("/audit/")
    assert log.status_code == 200
    assert "security.decryption_failed" in log.content.decode()
    event = AuditEvent.objects.get(action="security.decryption_failed")
    detail = client.get(f"/audit/{event.pk}/").content.decode()
    assert "customers_secret" in detail and str(mine.pk) in detail
    assert stored_body(mine) not in detail and THEIRS not in detail
