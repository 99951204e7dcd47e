"""The customer list's rows and search form are written in Python for speed
(customers/templatetags/customer_list.py, customers/forms.py `CompactSelect`); they must
show what Django's template tags and filters showed, escaped the same way, without a query
per row."""

import re
from datetime import date
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection
from django.template.defaultfilters import floatformat
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from accounts.roles import Role
from accounts.tenancy import system_code
from customers.forms import CompactSelect
from customers.models import Customer, Invoice
from customers.templatetags.customer_list import customer_rows, money_formatter
from tests.conftest import work_in

AMOUNTS = [
    "0",
    "0.00",
    "-0.00",
    "0.004",
    "0.005",
    "-0.005",
    "1",
    "-1.5",
    "999.99",
    "1000",
    "-1234.56",
    "1234567.891",
    "99999999999999.99",
    "-10000000.00",
]


@pytest.mark.parametrize("amount", AMOUNTS)
def test_money_is_written_as_floatformat_2g_writes_it(amount):
    assert money_formatter()(Decimal(amount)) == floatformat(Decimal(amount), "2g")


@pytest.mark.parametrize("amount", [None, "", 12, 3.5])
def test_money_that_is_not_a_decimal_is_left_to_floatformat(amount):
    assert money_formatter()(amount) == floatformat(amount, "2g")


def row(pk, name, organisation_number="", collector=None, balance=Decimal("0")):
    return SimpleNamespace(
        pk=pk,
        number=f"N<{pk}>",
        name=name,
        organisation_number=organisation_number,
        collector=collector,
        balance=balance,
    )


def test_a_row_links_to_the_card_and_escapes_what_users_typed():
    collector = type("Person", (), {"__str__": lambda self: 'Ola "O\'Hara" & <Co>'})()
    html = customer_rows(
        [
            row(7, "<script>x</script> & Søn", "9'1", collector, Decimal("-1234.5")),
            row(8, "Plain AS"),
        ]
    )
    cells = re.findall(r"<td[^>]*>(.*?)</td>", html)
    assert cells == [
        escape("N<7>"),
        f'<a href="{reverse("customer-detail", args=[7])}">'
        f"{escape('<script>x</script> & Søn')}</a>",
        escape("9'1"),
        escape(str(collector)),
        floatformat(Decimal("-1234.5"), "2g"),
        escape("N<8>"),
        f'<a href="{reverse("customer-detail", args=[8])}">Plain AS</a>',
        "—",
        "—",
        "0.00",
    ]
    assert html.count("<tr>") == 2
    assert '<td class="num">' in html


def test_the_compact_select_escapes_and_marks_the_selection():
    widget = CompactSelect(choices=[("", "Any"), (1, "A & <B>"), (2, 'Say "hi"')])
    html = widget.render("collector", "2", attrs={"id": "id_collector"})
    assert html.startswith('<select name="collector" id="id_collector">')
    assert '<option value="1">A &amp; &lt;B&gt;</option>' in html
    assert '<option value="2" selected>Say &quot;hi&quot;</option>' in html
    assert '<option value="">Any</option>' in html


def test_the_list_shows_collectors_and_balances_without_a_query_per_row(world, client):
    collector = world.users[Role.COLLECTOR]
    credit = work_in(client, world.users[Role.CREDIT_MANAGER], world.a)
    credit.get("/")  # the first request after sign-in also checks for a 2FA device

    def add(start, how_many):
        with system_code():
            customers = Customer.objects.bulk_create(
                Customer(
                    entity=world.a, number=f"{n:05d}", name=f"Kunde {n:05d} AS", collector=collector
                )
                for n in range(start, start + how_many)
            )
            Invoice.objects.bulk_create(
                Invoice(
                    entity=world.a,
                    customer=customer,
                    number=f"F{customer.number}",
                    issued_on=date(2026, 1, 1),
                    due_on=date(2026, 2, 1),
                    amount=Decimal("1234.50"),
                )
                for customer in customers
            )

    def get():
        with CaptureQueriesContext(connection) as queries:
            response = credit.get("/customers/")
        assert response.status_code == 200
        return response.content.decode(), len(queries)

    add(0, 2)
    get()  # the first list reads the entity's collector choices into the cache
    page, few = get()
    add(2, 58)
    page, many = get()
    assert many == few
    with system_code():
        first = Customer.objects.get(entity=world.a, number="00000")
    assert f'<a href="{reverse("customer-detail", args=[first.pk])}">Kunde 00000 AS</a>' in page
    assert page.count(f"<td>{escape(str(collector))}</td>") == 50
    assert page.count('<td class="num">1,234.50</td>') == 50
