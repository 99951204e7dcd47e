"""The audit log is append-only in PostgreSQL itself (security migration 0011): a raw
UPDATE or DELETE from any client is refused; only anonymisation's erasure of personal
fields passes, and a DELETE only for a retention job that says so."""

import pytest
from django.db import DatabaseError, connection, transaction

from accounts.roles import Role
from accounts.tenancy import system_code, tenant_scope
from consent.anonymisation import anonymise
from customers.models import Customer
from security.audit import record
from security.models import AuditEvent

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's"),
]


def raw(sql, *params, settings=()):
    """Run `sql` in its own transaction, after `set_config` of each (name, value)."""
    with transaction.atomic(), connection.cursor() as cursor:
        for name, value in settings:
            cursor.execute("SELECT set_config(%s, %s, true)", [name, value])
        cursor.execute(sql, list(params))
        return cursor.rowcount


@pytest.fixture
def event(world):
    return record(
        "customer.updated",
        actor=world.users[Role.ADMIN],
        entity=world.a,
        target_label="Fjellvik Transport AS",
        data={"name": "Fjellvik Transport AS"},
        ip="10.0.0.5",
    )


def test_a_raw_update_of_the_log_is_refused(event):
    with pytest.raises(DatabaseError, match="append-only"):
        raw("UPDATE security_auditevent SET action = 'x' WHERE id = %s", event.pk)
    event.refresh_from_db()
    assert event.action == "customer.updated"


def test_a_raw_delete_of_the_log_is_refused(event):
    with pytest.raises(DatabaseError, match="append-only"):
        raw("DELETE FROM security_auditevent WHERE id = %s", event.pk)
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_erasure_setting_lets_only_personal_fields_be_erased(event):
    erasing = [("guardrail.audit_erasure", "on")]
    for sql in (
        "UPDATE security_auditevent SET action = 'x' WHERE id = %s",
        "UPDATE security_auditevent SET actor_id = NULL WHERE id = %s",
        "UPDATE security_auditevent SET target_label = 'Someone else' WHERE id = %s",
        "UPDATE security_auditevent SET ip = '192.0.2.1' WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"):
            raw(sql, event.pk, settings=erasing)
    updated = raw(
        "UPDATE security_auditevent SET target_label = 'Anonym', data = '{}', ip = NULL "
        "WHERE id = %s",
        event.pk,
        settings=erasing,
    )
    assert updated == 1


def test_a_retention_job_that_says_so_may_delete(event):
    assert raw(
        "DELETE FROM security_auditevent WHERE id = %s",
        event.pk,
        settings=[("guardrail.audit_retention", "on")],
    )
    assert not AuditEvent.objects.filter(pk=event.pk).exists()


def test_anonymisation_still_erases_the_personal_data_of_the_log(world):
    admin = world.users[Role.ADMIN]
    with system_code():
        customer = Customer.objects.create(
            entity=world.a, number="C-100", name="Fjellvik Transport AS"
        )
    by_visitor = record(
        "invoice.disputed",
        entity=world.a,
        target=customer,
        data={"reason": "Kari says the amount is wrong"},
        ip="198.51.100.77",
    )
    by_staff = record(
        "customer.updated", actor=admin, entity=world.a, target=customer, ip="10.0.0.5"
    )

    with transaction.atomic(), tenant_scope(world.a):  # the permission ends with the erasure
        anonymise(customer.pk, confirmation="C-100", actor=admin)
        with pytest.raises(DatabaseError, match="append-only"):
            raw("UPDATE security_auditevent SET target_label = 'Anonym' WHERE id = %s", by_staff.pk)

    by_visitor.refresh_from_db()
    by_staff.refresh_from_db()
    assert (by_visitor.target_label, by_visitor.data, by_visitor.ip) == ("Anonym", {}, None)
    assert (by_staff.target_label, by_staff.data, by_staff.ip) == ("Anonym", {}, "10.0.0.5")
    assert by_staff.actor == admin and by_staff.action == "customer.updated"
