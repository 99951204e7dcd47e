"""GDPR tooling as staff and customers meet it, in a real browser: the emailed consent link
and its self-service page, and anonymising a customer from its card."""

import re
from datetime import date
from decimal import Decimal

import pytest
from django.core import mail
from playwright.sync_api import expect

from accounts.roles import Role
from accounts.tenancy import system_code
from consent.models import ConsentEvent, ConsentSource, DataProcessor, PrivacySettings
from customers.models import ContactPerson, Customer, Invoice
from tests.browser.conftest import TIMEOUT_MS
from tests.browser.test_login import expect_dashboard, log_in

NAME = "Fjellvik Transport AS"
IN_DEBT = "Havbris Fiskeri AS"


@pytest.fixture
def customers(world):
    """Entity a: a zero-balance customer with two contacts (one without email) and a paid
    invoice; a customer who still owes 1,250.50; a privacy policy and one processor."""
    with system_code():
        fjellvik = Customer.objects.create(
            entity=world.a,
            number="C-100",
            name=NAME,
            organisation_number="912345678",
            address="Storgata 1\n0155 Oslo",
            email="post@fjellvik.example",
            phone="+4722334455",
        )
        ContactPerson.objects.create(
            entity=world.a, customer=fjellvik, name="Kari Nordmann", email="kari@fjellvik.example"
        )
        ContactPerson.objects.create(entity=world.a, customer=fjellvik, name="Ola Hansen")
        havbris = Customer.objects.create(entity=world.a, number="C-200", name=IN_DEBT)
        for customer, number, paid in [(fjellvik, "F-1001", "980.00"), (havbris, "F-2001", "0")]:
            amount = "980.00" if customer is fjellvik else "1250.50"
            Invoice.objects.create(
                entity=world.a,
                customer=customer,
                number=number,
                issued_on=date(2026, 1, 5),
                due_on=date(2026, 1, 19),
                amount=Decimal(amount),
                amount_paid=Decimal(paid),
            )
        PrivacySettings.objects.create(
            entity=world.a, policy_url="https://acme.example/privacy", policy_version="v1"
        )
        DataProcessor.objects.create(
            entity=world.a, name="Mailfabrikken AS", purpose="Email delivery", country="Norway"
        )
    return {NAME: fjellvik, IN_DEBT: havbris}


def open_card(page, name):
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    expect(page.get_by_role("heading", name="Customers", level=1)).to_be_visible()
    page.get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()


def card_tab(page, tab):
    page.get_by_role("navigation", name="Customer card").get_by_role("link", name=tab).click()


def public_page(chromium_browser, console_errors):
    """A page in a fresh context (no cookies, no login) that reports console errors."""
    context = chromium_browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on(
        "console",
        lambda m: m.type == "error" and console_errors.append(f"{m.text} [{page.url}]"),
    )
    page.on("pageerror", lambda exc: console_errors.append(f"uncaught: {exc} [{page.url}]"))
    return context, page


def restore_origin(page, origin):
    """Send the Origin header a same-origin referrer policy would let the browser send
    (both must work: the page is CSRF-exempt because its link-bound session, with the
    page's form key, is the credential)."""

    def fix(route):
        request = route.request
        if request.method == "POST" and request.header_value("origin") == "null":
            headers = {**request.all_headers(), "origin": origin}
            route.fulfill(response=route.fetch(headers=headers, max_redirects=0))
        else:
            route.continue_()

    page.route(re.compile(r"/c/open/[^/]+/$"), fix)


@pytest.mark.parametrize(
    "origin",
    [
        "as-sent",
        "restored",
    ],
)
def test_a_contact_changes_their_consent_through_the_emailed_link(
    browser_page, chromium_browser, live_server, world, customers, console_errors, origin, settings
):
    settings.SITE_URL = live_server.url  # where emailed links point
    staff = browser_page
    editor = world.users[Role.CREDIT_MANAGER]
    log_in(staff, live_server, editor.email)
    expect_dashboard(staff, live_server, "Acme Norge AS")
    open_card(staff, NAME)
    card_tab(staff, "Contacts")
    row = staff.get_by_role("row").filter(has_text="Kari Nordmann")
    expect(row.locator("td.consent")).to_have_text(["No"] * 5)
    row.get_by_role("link", name="Consent").click()
    expect(staff.get_by_role("heading", level=1)).to_have_text(
        "Communication consent: Kari Nordmann"
    )
    expect(staff.get_by_role("cell", name="No changes recorded yet.")).to_be_visible()

    staff.get_by_role("button", name="Email a consent link").click()

    expect(staff.get_by_role("status")).to_have_text(
        "A link to their consent page was emailed to kari@fjellvik.example."
    )
    assert [m.to for m in mail.outbox] == [["kari@fjellvik.example"]]
    links = re.findall(rf"{re.escape(live_server.url)}/c/[^/\s]+/", mail.outbox[0].body)
    assert len(links) == 1

    context, public = public_page(chromium_browser, console_errors)
    if origin == "restored":
        restore_origin(public, live_server.url)
    try:
        response = public.goto(links[0])
        assert response.status == 200
        assert public.url.startswith(f"{live_server.url}/c/open/")  # the token left the URL
        assert response.header_value("cache-control") == "no-store"
        assert response.header_value("referrer-policy") == "no-referrer"
        expect(public.get_by_role("heading", level=1)).to_have_text(
            "How may Acme Norge AS contact you?"
        )
        expect(public.get_by_text("Hello Kari Nordmann.")).to_be_visible()
        expect(public.get_by_role("link", name="https://acme.example/privacy")).to_be_visible()
        expect(public.get_by_role("cell", name="Mailfabrikken AS")).to_be_visible()
        newsletter = public.get_by_role("checkbox", name="Newsletter")
        expect(newsletter).not_to_be_checked()
        with system_code():
            assert not ConsentEvent.objects.exists()  # opening the page changed nothing

        newsletter.check()
        public.get_by_role("button", name="Save my choices").click()

        expect(public.get_by_role("status")).to_have_text("Your choices were saved. Thank you.")
        expect(public.get_by_role("checkbox", name="Newsletter")).to_be_checked()
        expect(public.get_by_role("checkbox", name="Phone calls")).not_to_be_checked()
    finally:
        context.close()

    with system_code():
        granted = ConsentEvent.objects.get(purpose__name="Newsletter")
    assert (granted.source, granted.old_value, granted.new_value) == (
        ConsentSource.SELF_SERVICE,
        None,
        True,
    )
    assert granted.ip == "127.0.0.1" and "Chrome" in granted.user_agent
    assert granted.privacy_policy_version == "v1"

    staff.reload()
    expect(staff.get_by_role("checkbox", name=re.compile("^Newsletter"))).to_be_checked()
    history = staff.locator("section").filter(
        has=staff.get_by_role("heading", name="History", level=2)
    )
    change = history.get_by_role("row").filter(has_text="Newsletter")
    expect(change).to_have_count(1)
    expect(change).to_contain_text("not recorded → granted")
    expect(change).to_contain_text("The contact (self-service)")
    expect(change).to_contain_text("127.0.0.1")
    expect(change).to_contain_text("v1")
    # Every purpose got its first answer from the contact.
    expect(history.locator("tbody tr")).to_have_count(5)

    # Back on the Contacts tab, the row shows the contact's own choice.
    staff.get_by_role("link", name=f"← {NAME}").click()
    row = staff.get_by_role("row").filter(has_text="Kari Nordmann")
    expect(row.locator("td.consent")).to_have_text(["No", "No", "No", "Yes", "No"])


def test_anonymise_a_customer_from_its_card(browser_page, live_server, world, customers):
    page = browser_page
    log_in(page, live_server, world.users[Role.ADMIN].email)
    expect_dashboard(page, live_server, "Acme Norge AS")
    open_card(page, NAME)

    page.get_by_text("Menu", exact=True).click()
    page.get_by_role("link", name="Anonymise").click()

    expect(page.get_by_role("heading", name=f"Anonymise {NAME}", level=2)).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    confirm = page.get_by_label("Type the customer number (C-100) to confirm")
    confirm.fill("C-10")
    page.get_by_role("button", name="Anonymise for good").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Type the customer number exactly to confirm; nothing was changed."
    )
    with system_code():
        assert Customer.objects.get(pk=customers[NAME].pk).anonymised_at is None

    page.get_by_label("Type the customer number (C-100) to confirm").fill("C-100")
    page.get_by_role("button", name="Anonymise for good").click()

    expect(page.get_by_role("status")).to_have_text(
        "The customer was anonymised. This cannot be undone."
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Anonym")
    card_tab(page, "Contacts")
    expect(page.get_by_role("cell", name="Kari Nordmann")).to_have_count(0)
    expect(page.get_by_role("cell", name="Anonym", exact=True)).to_have_count(2)

    card_tab(page, "Invoices")
    page.get_by_role("row").filter(has_text="F-1001").get_by_role("link", name="Copy").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Invoice F-1001 (copy)")
    fields = page.get_by_test_id("customer-fields")
    expect(fields.locator("dt")).to_have_text(
        ["Customer", "Customer number", "Organisation number", "Address", "Email", "Phone"]
    )
    expect(fields.locator("dd")).to_have_text(
        ["Anonym", "C-100", "Anonym", "Anonym", "Anonym", "Anonym"]
    )
    for gone in [NAME, "912345678", "Storgata", "post@fjellvik.example", "+4722334455"]:
        expect(page.locator("body")).not_to_contain_text(gone)
    expect(page.locator("body")).to_contain_text("980.00 NOK")


def test_a_customer_with_a_balance_cannot_be_anonymised(
    browser_page, live_server, world, customers
):
    page = browser_page
    log_in(page, live_server, world.users[Role.COLLECTOR].email)
    expect_dashboard(page, live_server, "Acme Norge AS")
    open_card(page, IN_DEBT)

    page.get_by_text("Menu", exact=True).click()
    page.get_by_role("link", name="Anonymise").click()

    expect(page.get_by_role("heading", name=f"Anonymise {IN_DEBT}", level=2)).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text(
        "The customer has an outstanding balance of 1,250.50. "
        "It can be anonymised when the balance is zero."
    )
    expect(page.get_by_role("button", name="Anonymise for good")).to_have_count(0)
    expect(page.get_by_label(re.compile("Type the customer number"))).to_have_count(0)
    with system_code():
        assert Customer.objects.get(pk=customers[IN_DEBT].pk).name == IN_DEBT
