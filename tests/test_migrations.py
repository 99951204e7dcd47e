"""Moving the link grant from documents to customers changes Django's model state only: a
database filled at the previous head migrates to the new head with every row kept, the
invoice actions still pointing at their links, and the content types relabelled."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_scopes import scopes_disabled

BEFORE = [("customers", "0005_customer_name_words"), ("documents", "0003_linkuse_counted")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _heads():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_a_database_at_the_previous_head_keeps_its_links():
    old = _migrate(BEFORE)
    entity = old.get_model("accounts", "Entity").objects.create(name="Old AS", slug="old-as")
    customer = old.get_model("customers", "Customer").objects.create(
        entity=entity, number="K-1", name="Kunde AS"
    )
    invoice = old.get_model("customers", "Invoice").objects.create(
        entity=entity,
        customer=customer,
        number="F-1",
        issued_on=datetime.date(2026, 11, 1),
        due_on=datetime.date(2026, 12, 1),
        amount=Decimal("100.00"),
    )
    link = old.get_model("documents", "CustomerLink").objects.create(
        entity=entity, customer=customer, kind="interactive", token_hash="a" * 64, uses=2
    )
    old.get_model("documents", "LinkUse").objects.create(
        entity=entity, link=link, ip="192.0.2.7", user_agent="Agent/1"
    )
    old.get_model("documents", "InvoiceAction").objects.create(
        entity=entity, invoice=invoice, kind="promise", link=link
    )

    _migrate(_heads())

    from django.contrib.contenttypes.models import ContentType

    from customers.models import CustomerLink, LinkUse
    from documents.models import InvoiceAction

    with scopes_disabled():
        moved = CustomerLink.objects.get(pk=link.pk)
        assert (moved.customer_id, moved.kind, moved.token_hash, moved.uses) == (
            customer.pk,
            "interactive",
            "a" * 64,
            2,
        )
        use = LinkUse.objects.get(link=moved)
        assert (use.ip, use.user_agent) == ("192.0.2.7", "Agent/1")
        assert InvoiceAction.objects.get(invoice_id=invoice.pk).link == moved
    assert CustomerLink._meta.db_table == "documents_customerlink"
    assert ContentType.objects.filter(app_label="customers", model="customerlink").exists()
    assert not ContentType.objects.filter(app_label="documents", model="customerlink").exists()
