"""The race between anonymising a customer and a new invoice for it (PostgreSQL): an
invoice arriving during the anonymisation waits and is refused, one committed first
makes the anonymisation refuse, and started together they never leave an anonymised
customer with a balance."""

import threading
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection, transaction

from accounts.roles import Role
from accounts.tenancy import system_code, tenant_scope
from consent.anonymisation import anonymise
from customers.models import Customer, Invoice
from customers.selectors import ledger_balance
from customers.services import create_invoice
from security.models import AuditEvent
from tests.helpers import WAIT, blocked_on_a_lock, in_thread, make_invoice

NAME = "Fjellvik Transport AS"
NUMBER = "C-100"


# --- The race with a new invoice (PostgreSQL) ----------------------------------------------------

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: row locks (SELECT ... FOR UPDATE) and concurrent "
    "connections; SQLite serialises every writer, so there is no race to test",
)


def new_invoice(customer_pk, entity_pk, number="F-9001", amount="500.00"):
    with tenant_scope(entity_pk):
        return create_invoice(
            customer_pk,
            number=number,
            issued_on=date(2026, 3, 1),
            due_on=date(2026, 3, 15),
            amount=Decimal(amount),
        ).number


def state_of(customer_pk):
    with system_code():
        customer = Customer.objects.get(pk=customer_pk)
        return customer.anonymised_at is not None, ledger_balance(customer)


@pytest.fixture
def racing(transactional_db, world):
    with system_code():
        customer = Customer.objects.create(
            entity=world.a, number=NUMBER, name=NAME, email="post@fjellvik.example"
        )
    make_invoice(
        customer, "F-1001", "1000.00", "1000.00", issued=date(2026, 1, 5), due=date(2026, 1, 19)
    )
    return customer


@postgresql_only
def test_an_invoice_during_the_anonymisation_waits_and_is_refused(world, racing):
    entity_pk, admin = world.a.pk, world.users[Role.ADMIN]
    anonymised, release, outcomes = threading.Event(), threading.Event(), {}

    def anonymise_and_hold():
        with tenant_scope(entity_pk), transaction.atomic():
            anonymise(racing.pk, confirmation=NUMBER, actor=admin)
            anonymised.set()
            # Keep the transaction (and its row lock) open until the invoice waits.
            assert release.wait(WAIT)
        return "anonymised"

    holder = in_thread(anonymise_and_hold, outcomes, "anonymise")
    try:
        assert anonymised.wait(WAIT), outcomes
        inserter = in_thread(lambda: new_invoice(racing.pk, entity_pk), outcomes, "invoice")
        assert blocked_on_a_lock(), "the invoice did not wait for the anonymisation's lock"
        assert "invoice" not in outcomes  # still waiting
    finally:
        release.set()
        holder.join(WAIT)
    inserter.join(WAIT)
    assert not holder.is_alive() and not inserter.is_alive()

    assert outcomes == {
        "anonymise": "anonymised",
        "invoice": "The customer is anonymised; it cannot get new invoices.",
    }
    with system_code():
        assert not Invoice.objects.filter(number="F-9001").exists()
    assert state_of(racing.pk) == (True, Decimal("0"))


@postgresql_only
def test_an_invoice_committed_first_makes_the_anonymisation_refuse(world, racing):
    entity_pk, admin = world.a.pk, world.users[Role.ADMIN]
    created, release, outcomes = threading.Event(), threading.Event(), {}

    def invoice_and_hold():
        with transaction.atomic():
            number = new_invoice(racing.pk, entity_pk)
            created.set()
            assert release.wait(WAIT)
        return number

    def anonymise_now():
        with tenant_scope(entity_pk):
            anonymise(racing.pk, confirmation=NUMBER, actor=admin)
        return "anonymised"

    holder = in_thread(invoice_and_hold, outcomes, "invoice")
    try:
        assert created.wait(WAIT), outcomes
        anonymiser = in_thread(anonymise_now, outcomes, "anonymise")
        assert blocked_on_a_lock(), "the anonymisation did not wait for the invoice's lock"
        assert "anonymise" not in outcomes
    finally:
        release.set()
        holder.join(WAIT)
    anonymiser.join(WAIT)
    assert not holder.is_alive() and not anonymiser.is_alive()

    assert outcomes == {
        "invoice": "F-9001",
        "anonymise": "The customer has an outstanding balance of 500.00. The balance must be "
        "zero before the customer can be anonymised; nothing was changed.",
    }
    assert state_of(racing.pk) == (False, Decimal("500.00"))
    with system_code():
        assert Customer.objects.get(pk=racing.pk).name == NAME
    assert not AuditEvent.objects.filter(action="customer.anonymised").exists()


@postgresql_only
def test_simultaneous_invoice_and_anonymisation_never_leave_an_anonymised_balance(world, racing):
    """Started together, either may win; the invariant holds every time."""
    entity_pk, admin = world.a.pk, world.users[Role.ADMIN]
    seen = set()
    for round_number in range(8):
        with system_code():
            customer = Customer.objects.create(
                entity_id=entity_pk, number=f"R-{round_number}", name=f"Race {round_number} AS"
            )
        barrier, outcomes = threading.Barrier(2, timeout=WAIT), {}

        def go_invoice(pk=customer.pk, n=round_number, barrier=barrier):
            barrier.wait()
            return new_invoice(pk, entity_pk, number=f"F-R{n}")

        def go_anonymise(pk=customer.pk, n=round_number, barrier=barrier):
            barrier.wait()
            with tenant_scope(entity_pk):
                anonymise(pk, confirmation=f"R-{n}", actor=admin)
            return "anonymised"

        threads = [
            in_thread(go_invoice, outcomes, "invoice"),
            in_thread(go_anonymise, outcomes, "anonymise"),
        ]
        for thread in threads:
            thread.join(WAIT)
        assert not any(t.is_alive() for t in threads)
        anonymised, balance = state_of(customer.pk)
        assert not (anonymised and balance != 0), outcomes
        if anonymised:
            assert outcomes["anonymise"] == "anonymised"
            assert outcomes["invoice"] == "The customer is anonymised; it cannot get new invoices."
            seen.add("anonymisation first")
        else:
            assert outcomes["invoice"] == f"F-R{round_number}"
            assert "outstanding balance of 500.00" in outcomes["anonymise"]
            seen.add("invoice first")
    assert seen  # at least one round ran (which side wins is up to the scheduler)
