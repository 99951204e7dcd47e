"""Customer visibility and secrets as users meet them: in a real browser."""

import re

import pytest
from playwright.sync_api import expect

from accounts.roles import Role
from accounts.tenancy import system_code
from customers.models import AccessGroup, Customer, Secret
from security.models import AuditEvent, SecurityPolicy
from tests.browser.conftest import TIMEOUT_MS
from tests.browser.test_login import expect_dashboard, log_in

MINE = ["Birkeland Bygg AS", "Fjordvik Transport AS"]
OTHERS = "Lyngmo Fisk AS"
SECRET_TITLE = "Bank details"
SECRET_BODY = "Konto 1234.56.78903, contact Kari before calling"


@pytest.fixture
def customers(world):
    """Entity a restricts collectors; the collector manages two customers, the credit
    manager one. A secret on the first is shared with "Legal" (the sales user only)."""
    SecurityPolicy.objects.create(entity=world.a, restricted_roles=["collector"])
    collector = world.users[Role.COLLECTOR]
    with system_code():
        made = {
            name: Customer.objects.create(
                entity=world.a, number=f"K-{n}", name=name, collector=collector
            )
            for n, name in enumerate(MINE, start=1)
        }
        made[OTHERS] = Customer.objects.create(
            entity=world.a, number="K-9", name=OTHERS, collector=world.users[Role.CREDIT_MANAGER]
        )
        legal = AccessGroup.objects.create(entity=world.a, name="Legal")
        legal.members.set([world.users[Role.SALES]])
        secret = Secret(entity=world.a, customer=made[MINE[1]], title=SECRET_TITLE)
        secret.set_body(SECRET_BODY)
        secret.save()
        secret.groups.set([legal])
    return made


def open_customers(page):
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    expect(page.get_by_role("heading", name="Customers", level=1)).to_be_visible()


def customer_rows(page):
    return page.locator("table tbody tr")


def new_page(chromium_browser, console_errors):
    """A page in a fresh context (no cookies), reporting console errors like browser_page."""
    context = chromium_browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on(
        "console",
        lambda m: m.type == "error" and console_errors.append(f"{m.text} [{page.url}]"),
    )
    page.on("pageerror", lambda exc: console_errors.append(f"uncaught: {exc} [{page.url}]"))
    return context, page


def open_secrets_tab(page, customer_name):
    open_customers(page)
    page.get_by_role("link", name=customer_name, exact=True).click()
    expect(page.get_by_role("heading", name=customer_name, level=1)).to_be_visible()
    page.get_by_role("navigation", name="Customer card").get_by_role("link", name="Secrets").click()
    expect(page).to_have_url(re.compile(r"/customers/\d+/secrets/$"))


def test_a_restricted_collector_sees_only_their_customers(
    browser_page, live_server, world, customers, console_errors
):
    page = browser_page
    log_in(page, live_server, world.users[Role.COLLECTOR].email)
    expect_dashboard(page, live_server, "Acme Norge AS")
    expect(page.locator(".figure")).to_have_text("2")

    open_customers(page)
    rows = customer_rows(page)
    expect(rows).to_have_count(2)
    expect(rows.get_by_role("link")).to_have_text(MINE)
    expect(page.get_by_text(OTHERS)).to_have_count(0)

    # Searching for the other customer finds nothing.
    page.get_by_label("Search", exact=True).fill("Lyngmo")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_text(["No customers match."])

    # Their own card opens and says why.
    open_customers(page)
    page.get_by_role("link", name=MINE[0], exact=True).click()
    expect(page.get_by_role("heading", name=MINE[0], level=1)).to_be_visible()
    expect(page.get_by_test_id("why-visible")).to_contain_text("you are its collector")

    # The other customer's card, by its address: the 404 page.
    url = f"{live_server.url}/customers/{customers[OTHERS].pk}/"
    response = page.goto(url)
    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found", level=1)).to_be_visible()
    expect(page.get_by_text(OTHERS)).to_have_count(0)
    # Chromium logs the expected 404 of that page itself as a console error; only that
    # one entry is dropped, any other error still fails the test.
    expected = [e for e in console_errors if "status of 404" in e and url in e]
    assert len(expected) == 1, console_errors
    console_errors.remove(expected[0])

    # The secret on their own customer is not shared with them: not even its title.
    open_secrets_tab(page, MINE[1])
    expect(page.get_by_text("No secrets you can read.")).to_be_visible()
    expect(page.get_by_text(SECRET_TITLE)).to_have_count(0)
    expect(page.get_by_role("button", name="Reveal")).to_have_count(0)


def test_a_group_member_reveals_a_secret_others_do_not_see(
    browser_page, chromium_browser, live_server, world, customers, console_errors
):
    # A member of "Legal" (Sales, unrestricted here) in a fresh context.
    context, page = new_page(chromium_browser, console_errors)
    try:
        log_in(page, live_server, world.users[Role.SALES].email)
        expect_dashboard(page, live_server, "Acme Norge AS")
        open_secrets_tab(page, MINE[1])
        item = page.locator("ul.secrets li").filter(has_text=SECRET_TITLE)
        expect(item).to_contain_text("(Legal)")
        expect(page.get_by_text(SECRET_BODY)).to_have_count(0)  # hidden until revealed

        item.get_by_role("button", name="Reveal").click()
        expect(page.get_by_role("heading", name=SECRET_TITLE, level=1)).to_be_visible()
        expect(page.get_by_test_id("secret-body")).to_have_text(SECRET_BODY)
        expect(page.get_by_text("This reveal was logged.")).to_be_visible()
    finally:
        context.close()
    event = AuditEvent.objects.get(action="secret.revealed")
    assert event.actor == world.users[Role.SALES]
    assert SECRET_BODY not in str(event.data)

    # A non-member who sees every customer (the admin) in another fresh context.
    page = browser_page
    log_in(page, live_server, world.users[Role.ADMIN].email)
    expect_dashboard(page, live_server, "Acme Norge AS")
    open_secrets_tab(page, MINE[1])
    expect(page.get_by_text("No secrets you can read.")).to_be_visible()
    expect(page.get_by_text(SECRET_TITLE)).to_have_count(0)
    expect(page.get_by_role("button", name="Reveal")).to_have_count(0)
    assert AuditEvent.objects.filter(action="secret.revealed").count() == 1


def test_a_credit_manager_searches_by_the_start_of_words_and_pages_through(
    browser_page, live_server, world, customers
):
    with system_code():
        Customer.objects.bulk_create(
            Customer(entity=world.a, number=f"P-{n:03d}", name=f"Polar Fisk {n:03d} AS")
            for n in range(60)
        )
    page = browser_page
    log_in(page, live_server, world.users[Role.CREDIT_MANAGER].email)
    expect_dashboard(page, live_server, "Acme Norge AS")
    open_customers(page)
    expect(page.get_by_text("Customers 1–50 of 63")).to_be_visible()
    expect(customer_rows(page)).to_have_count(50)

    search = page.get_by_label("Search", exact=True)
    search.fill("fjord TRANS")  # the start of two words, any case
    page.get_by_role("button", name="Search").click()
    expect(customer_rows(page).get_by_role("link")).to_have_text(["Fjordvik Transport AS"])
    search.fill("vik")  # inside a word: not the start of one
    page.get_by_role("button", name="Search").click()
    expect(customer_rows(page)).to_have_text(["No customers match."])
    search.fill("K-9")  # a customer number, since it has a digit
    page.get_by_role("button", name="Search").click()
    expect(customer_rows(page).get_by_role("link")).to_have_text([OTHERS])

    search.fill("polar")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("Customers 1–50 of 60")).to_be_visible()
    page.get_by_role("link", name="Next").click()
    expect(page.get_by_text("Customers 51–60 of 60")).to_be_visible()
    expect(customer_rows(page)).to_have_count(10)
    expect(customer_rows(page).get_by_role("link").first).to_have_text("Polar Fisk 050 AS")
    expect(search).to_have_value("polar")  # the search is kept across pages
