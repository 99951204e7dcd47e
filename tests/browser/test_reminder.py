"""A payment reminder end to end, in a real browser: staff send it from the customer's
Documents tab; the customer, without an account, opens the emailed page, downloads an
invoice PDF and promises to pay; staff see the promise on the Invoices tab."""

import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect

from accounts.roles import Role
from accounts.tenancy import system_code, tenant_scope
from consent.models import ConsentSource
from consent.services import REMINDER_EMAIL, purposes_for, set_consents
from customers.models import ContactPerson, Customer, Invoice
from documents.models import InvoiceAction, OutgoingEmail
from tests.browser.conftest import TIMEOUT_MS
from tests.browser.test_login import expect_dashboard, log_in

CUSTOMER = "Fjellvik Transport AS"
KARI = "kari@fjellvik.example"


@pytest.fixture
def customer(world):
    """Entity a's customer, managed by the collector; Kari consented to reminders by
    email; two open invoices."""
    with system_code():
        customer = Customer.objects.create(
            entity=world.a, number="C-1", name=CUSTOMER, collector=world.users[Role.COLLECTOR]
        )
        kari = ContactPerson.objects.create(
            entity=world.a, customer=customer, name="Kari Nordmann", email=KARI
        )
        for number, amount in [("F-1001", "1000.00"), ("F-1002", "480.50")]:
            Invoice.objects.create(
                entity=world.a,
                customer=customer,
                number=number,
                issued_on=date(2026, 5, 1),
                due_on=date(2026, 5, 15),
                amount=Decimal(amount),
            )
    with tenant_scope(world.a):
        purpose = next(p for p in purposes_for(world.a) if p.code == REMINDER_EMAIL)
        set_consents(kari, {purpose: True}, source=ConsentSource.STAFF)
    return customer


def new_page(chromium_browser, console_errors):
    """A page in a fresh context (no cookies), reporting console errors like browser_page."""
    context = chromium_browser.new_context(accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on(
        "console",
        lambda m: m.type == "error" and console_errors.append(f"{m.text} [{page.url}]"),
    )
    page.on("pageerror", lambda exc: console_errors.append(f"uncaught: {exc} [{page.url}]"))
    return context, page


def open_card_tab(page, tab):
    page.get_by_role("navigation", name="Customer card").get_by_role("link", name=tab).click()


def test_a_reminder_from_sending_to_promise(
    browser_page, live_server, world, customer, chromium_browser, console_errors, settings
):
    settings.SITE_URL = live_server.url  # where emailed links point
    staff = browser_page
    log_in(staff, live_server, world.users[Role.COLLECTOR].email)
    expect_dashboard(staff, live_server, "Acme Norge AS")

    staff.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    staff.get_by_role("link", name=CUSTOMER, exact=True).click()
    expect(staff.get_by_role("heading", name=CUSTOMER, level=1)).to_be_visible()
    open_card_tab(staff, "Documents")
    expect(staff).to_have_url(re.compile(rf"/customers/{customer.pk}/documents/$"))
    expect(staff.get_by_label("To", exact=True)).to_contain_text(KARI)
    staff.get_by_role("button", name="Send reminder").click()

    expect(staff.get_by_role("status")).to_have_text(f"The reminder to {KARI} is on its way.")
    expect(staff.get_by_text("Payment reminder from Acme Norge AS → " + KARI)).to_be_visible()
    with system_code():
        assert OutgoingEmail.objects.get().status == "sent"
    [message] = mail.outbox
    assert message.to == [KARI]
    page_url = re.search(r"tell us if something is wrong:\n(\S+)", message.body).group(1)
    assert page_url.startswith(f"{live_server.url}/l/")

    # The customer: no account, no cookies.
    context, customer_page = new_page(chromium_browser, console_errors)
    try:
        response = customer_page.goto(page_url)
        assert response.status == 200
        assert response.header_value("cache-control") == "no-store"
        assert response.header_value("referrer-policy") == "no-referrer"
        # The token was exchanged for a link-bound session on a clean URL.
        clean_url = customer_page.url
        assert clean_url.startswith(f"{live_server.url}/l/open/")
        assert page_url.split("/")[-2] not in clean_url
        expect(customer_page.get_by_role("heading", level=1)).to_have_text(
            f"Open invoices for {CUSTOMER}"
        )
        invoice = customer_page.get_by_test_id("invoice-F-1001")
        expect(customer_page.get_by_test_id("invoice-F-1002")).to_be_visible()

        with customer_page.expect_download() as download_info:
            invoice.get_by_role("button", name="Download PDF").click()
        download = download_info.value
        assert download.failure() is None
        assert download.suggested_filename == "invoice-F-1001.pdf"
        assert Path(download.path()).read_bytes().startswith(b"%PDF-")

        promised = timezone.localdate() + timedelta(days=14)
        invoice.get_by_label("I will pay by").fill(promised.isoformat())
        invoice.get_by_role("button", name="Promise to pay").click()

        expect(customer_page).to_have_url(clean_url)
        expect(invoice.get_by_role("status")).to_have_text(
            f"You promised to pay by {promised:%Y-%m-%d}."
        )
        expect(customer_page.get_by_test_id("invoice-F-1002").get_by_role("status")).to_have_count(
            0
        )
    finally:
        context.close()
    with system_code():
        [action] = InvoiceAction.objects.all()
    assert (action.kind, action.promised_on, action.invoice.number) == (
        "promise",
        promised,
        "F-1001",
    )

    # Back to staff: the collector sees the promise on the Invoices tab.
    staff.reload()
    open_card_tab(staff, "Invoices")
    expect(staff).to_have_url(re.compile(rf"/customers/{customer.pk}/invoices/$"))
    expect(staff.get_by_test_id("invoice-action")).to_have_count(1)
    expect(staff.get_by_test_id("invoice-action")).to_contain_text(
        f"The customer promised to pay by {promised:%Y-%m-%d}"
    )
    assert console_errors == []
