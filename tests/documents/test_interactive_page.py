"""The customer's interactive page: open invoices shown (a GET only logs the access),
a promise to pay and a dispute (recorded, audited, shown to staff; only for this
customer's open invoices), the per-invoice PDF (its button posts), the invoice PDF link,
and the file name of the staff invoice copy's PDF."""

from datetime import date

import pytest
import time_machine
from django.test import Client

from accounts.tenancy import system_code
from customers.models import CustomerLink, LinkUse
from documents.models import InvoiceAction, OutgoingEmail
from security.models import AuditEvent
from tests.helpers import (
    NOW,
    assert_private,
    audit,
    fresh,
    make_invoice,
    make_link,
    pdf_text,
    url,
    uses_of,
)

# --- The interactive page --------------------------------------------------------------------


@pytest.fixture
def page(book):
    link, token = make_link(book.customer, CustomerLink.Kind.INTERACTIVE, contact=book.kari)
    return link, token


def promise(client, token, invoice, day):
    return client.post(
        url(token),
        {
            "action": "promise",
            "invoice_id": invoice.pk,
            f"p{invoice.pk}-invoice": invoice.pk,
            f"p{invoice.pk}-promised_on": day.isoformat() if hasattr(day, "isoformat") else day,
        },
        REMOTE_ADDR="198.51.100.4",
        HTTP_USER_AGENT="Safari/18",
    )


def dispute(client, token, invoice, comment):
    return client.post(
        url(token),
        {
            "action": "dispute",
            "invoice_id": invoice.pk,
            f"d{invoice.pk}-invoice": invoice.pk,
            f"d{invoice.pk}-comment": comment,
        },
    )


def test_the_page_shows_open_invoices_and_a_get_only_logs_the_access(client, book, page):
    link, token = page
    with system_code():
        before = (
            InvoiceAction.objects.count(),
            LinkUse.objects.count(),
            AuditEvent.objects.count(),
            OutgoingEmail.objects.count(),
        )

    response = client.get(url(token), follow=True)

    assert response.status_code == 200
    assert_private(response)
    html = response.content.decode()
    assert "Open invoices for Fjellvik Transport AS" in html
    assert 'data-testid="invoice-F-1001"' in html and 'data-testid="invoice-F-1002"' in html
    assert "Outstanding <strong>1,000.00 NOK</strong>" in html
    assert "Outstanding <strong>400.00 NOK</strong>" in html
    for absent in ["F-1000", "F-2001", "F-9001", "Havbris"]:
        assert absent not in html
    [(page_url, _)] = response.redirect_chain  # the clean URL (tests/.../test_link_landing.py)
    assert f'<form method="post" action="{page_url}invoices/{book.open1.pk}/pdf/">' in html
    assert token not in html
    with system_code():
        after = (
            InvoiceAction.objects.count(),
            LinkUse.objects.count(),
            AuditEvent.objects.count(),
            OutgoingEmail.objects.count(),
        )
    assert after == (before[0], before[1] + 1, before[2], before[3])
    assert [use.counted for use in uses_of(link)] == [False]  # logged, no use spent
    assert fresh(link).uses == 0


def test_a_promise_to_pay_is_recorded_audited_and_shown_to_staff(client, book, page):
    link, token = page
    with time_machine.travel(NOW, tick=False):
        response = promise(client, token, book.open1, date(2026, 6, 20))

    assert response.status_code == 302
    assert response["Location"] == url(token)
    with system_code():
        [action] = InvoiceAction.objects.all()
    assert (action.kind, action.invoice, action.promised_on, action.link) == (
        "promise",
        book.open1,
        date(2026, 6, 20),
        link,
    )
    assert action.entity == book.entity
    [event] = audit("invoice.promised", book.entity)
    assert event.actor is None
    assert event.target_id == str(book.customer.pk)
    assert event.data == {"invoice": "F-1001", "link": link.pk}
    [use] = uses_of(link)
    assert (use.ip, use.user_agent) == ("198.51.100.4", "Safari/18")
    shown = client.get(url(token), follow=True).content.decode()
    assert "You promised to pay by 2026-06-20." in shown

    staff = Client()
    book.editor(staff)
    tab = staff.get(f"/customers/{book.customer.pk}/invoices/").content.decode()
    assert "The customer promised to pay by <strong>2026-06-20</strong>" in tab


def test_a_promise_for_today_is_accepted_and_a_past_date_refused(client, book, page):
    _, token = page
    with time_machine.travel(NOW, tick=False):
        past = promise(client, token, book.open1, date(2026, 5, 31))
        assert past.status_code == 200
        assert_private(past)
        assert "Choose today or a later date." in past.content.decode()
        with system_code():
            assert not InvoiceAction.objects.exists()
        assert audit("invoice.promised", book.entity) == []

        garbage = promise(client, token, book.open1, "next week")
        assert garbage.status_code == 200
        assert "Enter a valid date." in garbage.content.decode()

        today = promise(client, token, book.open1, date(2026, 6, 1))
    assert today.status_code == 302
    with system_code():
        assert InvoiceAction.objects.get().promised_on == date(2026, 6, 1)


def test_a_promise_more_than_a_year_ahead_is_refused(client, book, page):
    _, token = page
    with time_machine.travel(NOW, tick=False):  # 2026-06-01
        for day in (date(2027, 6, 2), "9999-12-31"):
            far = promise(client, token, book.open1, day)
            assert far.status_code == 200
            assert "Choose a date within a year" in far.content.decode()
        assert promise(client, token, book.open1, date(2027, 6, 1)).status_code == 302
    with system_code():
        assert [a.promised_on for a in InvoiceAction.objects.all()] == [date(2027, 6, 1)]


def test_the_page_takes_no_action_on_and_serves_no_pdf_of_a_paid_invoice(client, book, page):
    link, token = page
    assert dispute(client, token, book.paid, "Hidden dispute").status_code == 200
    assert promise(client, token, book.paid, date(2099, 1, 1)).status_code == 200
    with system_code():
        assert not InvoiceAction.objects.exists()
    assert client.post(f"/l/{token}/invoices/{book.paid.pk}/pdf/").status_code == 404
    assert client.post(f"/l/{token}/invoices/{book.open1.pk}/pdf/").status_code == 200
    assert fresh(link).uses == 1  # only the open invoice's PDF spent a use


def test_a_dispute_needs_a_comment_and_is_shown_to_staff(client, book, page):
    link, token = page

    empty = dispute(client, token, book.open2, "   ")
    assert empty.status_code == 200
    assert "This field is required." in empty.content.decode()
    with system_code():
        assert not InvoiceAction.objects.exists()

    response = dispute(client, token, book.open2, "We never received the goods <b>!</b>")

    assert response.status_code == 302
    with system_code():
        [action] = InvoiceAction.objects.all()
    assert (action.kind, action.invoice, action.promised_on) == ("dispute", book.open2, None)
    assert action.comment == "We never received the goods <b>!</b>"
    [event] = audit("invoice.disputed", book.entity)
    assert event.data == {"invoice": "F-1002", "link": link.pk}
    staff = Client()
    book.editor(staff)
    tab = staff.get(f"/customers/{book.customer.pk}/invoices/").content.decode()
    assert (
        "The customer disputes this invoice: “We never received the goods &lt;b&gt;!&lt;/b&gt;”"
        in tab
    )


def test_actions_on_another_customers_invoice_are_ignored(client, book, page):
    _, token = page

    for invoice in [book.others_invoice, book.strangers_invoice]:
        response = dispute(client, token, invoice, "Not ours")
        assert response.status_code == 200
        assert promise(client, token, invoice, date(2099, 1, 1)).status_code == 200

    with system_code():
        assert not InvoiceAction.objects.exists()
    assert audit("invoice.disputed", book.entity) == []


@pytest.mark.parametrize("invoice_id", ["99999999999999999999999", "-1", "abc", ""])
def test_an_action_naming_no_invoice_shows_the_page_again(client, book, page, invoice_id):
    _, token = page

    response = client.post(url(token), {"action": "dispute", "invoice_id": invoice_id})

    assert response.status_code == 200
    assert "F-1001" in response.content.decode()
    with system_code():
        assert not InvoiceAction.objects.exists()


def test_the_per_invoice_pdf_address_serves_nothing_on_a_get(client, book, page):
    """Its button posts (the download spends a use); a GET opens the customer's page."""
    link, token = page
    response = client.get(url(token, "invoices", book.open1.pk, "pdf"))
    assert response.status_code == 302
    assert response["Location"].startswith("/l/open/")
    assert fresh(link).uses == 0
    response = client.put(url(token, "invoices", book.open1.pk, "pdf"))
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST, HEAD, OPTIONS"


def test_other_link_kinds_take_no_submissions(client, book):
    _, token = make_link(book.customer, CustomerLink.Kind.INVOICE_PDF, invoice=book.open1)
    assert dispute(client, token, book.open1, "x").status_code == 404
    assert client.post(url(token, "invoices", book.open1.pk, "pdf")).status_code == 404
    with system_code():
        assert not InvoiceAction.objects.exists()


def test_the_per_invoice_pdf_is_only_for_this_customers_invoices(client, book, page):
    link, token = page

    response = client.post(url(token, "invoices", book.open1.pk, "pdf"))

    assert response.status_code == 200
    assert_private(response)
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="invoice-F-1001.pdf"'
    assert response.content.startswith(b"%PDF-")
    text = pdf_text(response.content)
    assert "Invoice F-1001 (copy)" in text
    assert "Fjellvik Transport AS" in text
    assert fresh(link).uses == 1

    for invoice in [book.others_invoice, book.strangers_invoice]:
        other = client.post(url(token, "invoices", invoice.pk, "pdf"))
        assert other.status_code == 404
        assert b"%PDF" not in other.content
    assert client.post(url(token, "invoices", 999999, "pdf")).status_code == 404
    assert fresh(link).uses == 1


def test_an_invoice_pdf_link_gives_that_invoice(client, book):
    link, token = make_link(book.customer, CustomerLink.Kind.INVOICE_PDF, invoice=book.open2)

    response = client.post(url(token))

    assert response.status_code == 200
    assert_private(response)
    assert response["Content-Type"] == "application/pdf"
    assert "Invoice F-1002 (copy)" in pdf_text(response.content)
    assert "400.00 NOK" in pdf_text(response.content)
    assert fresh(link).uses == 1


# --- The invoice copy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "disposition"),
    [
        ('F-"7";x', 'attachment; filename="invoice-F-\\"7\\";x.pdf"'),
        (
            "F-7\r\nSet-Cookie: a=b",
            "attachment; filename*=utf-8''invoice-F-7%0D%0ASet-Cookie%3A%20a%3Db.pdf",
        ),
        ("Faktura-Ø7", "attachment; filename*=utf-8''invoice-Faktura-%C3%987.pdf"),
    ],
)
def test_an_invoice_copy_pdf_keeps_a_well_formed_file_name(client, book, number, disposition):
    item = make_invoice(book.customer, number, "100.00")
    book.editor(client)

    response = client.get(f"/customers/invoices/{item.pk}/copy/?format=pdf")

    assert response.status_code == 200
    assert response.content.startswith(b"%PDF")
    assert response["Content-Disposition"] == disposition
    assert "Set-Cookie" not in response.headers
