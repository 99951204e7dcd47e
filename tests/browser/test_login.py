"""Logging in and out, and switching entity, as a user does it: in a real browser."""

import re

import pytest
from playwright.sync_api import expect

from accounts.roles import Role
from tests.conftest import PASSWORD

LOGIN_ERROR = "That email and password do not match an active account."


def open_login_page(page, live_server):
    response = page.goto(f"{live_server.url}/accounts/login/")
    expect(page.get_by_role("heading", name="Log in", level=1)).to_be_visible()
    return response


def log_in(page, live_server, email, password=PASSWORD):
    open_login_page(page, live_server)
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def expect_dashboard(page, live_server, entity_name):
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text(entity_name)
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


@pytest.mark.parametrize(
    "typed",
    [lambda email: email, lambda email: f"  {email.upper()}  "],
    ids=["as-stored", "other-case-and-spaces"],
)
def test_log_in_lands_on_the_dashboard(browser_page, live_server, world, typed):
    admin = world.users[Role.ADMIN]

    log_in(browser_page, live_server, typed(admin.email))

    expect_dashboard(browser_page, live_server, "Acme Norge AS")
    expect(browser_page.get_by_text(admin.email, exact=True)).to_be_visible()
    # One entity only: its name in the header, no switcher.
    expect(browser_page.locator("header")).to_contain_text("Acme Norge AS")
    expect(browser_page.get_by_role("button", name="Switch")).to_have_count(0)


@pytest.mark.parametrize(
    ("email", "password"),
    [("admin@acme.example", "not-the-password"), ("nobody-here@acme.example", PASSWORD)],
    ids=["wrong-password", "unknown-email"],
)
def test_failed_log_in_stays_on_the_login_page(browser_page, live_server, world, email, password):
    log_in(browser_page, live_server, email, password)

    expect(browser_page.get_by_role("alert")).to_have_text(LOGIN_ERROR)
    expect(browser_page).to_have_url(f"{live_server.url}/accounts/login/")
    expect(browser_page.get_by_role("heading", name="Log in", level=1)).to_be_visible()
    expect(browser_page.get_by_role("button", name="Log out")).to_have_count(0)
    # The typed address is kept; the password is not sent back.
    expect(browser_page.get_by_label("Email", exact=True)).to_have_value(email)
    expect(browser_page.get_by_label("Password", exact=True)).to_have_value("")


def test_main_admin_switches_entity(browser_page, live_server, world):
    log_in(browser_page, live_server, world.main_admin.email)
    expect_dashboard(browser_page, live_server, "Acme Norge AS")
    switcher = browser_page.get_by_label("Entity", exact=True)
    expect(switcher).to_have_value(str(world.a.pk))

    switcher.select_option(label="Acme Sverige AB")
    browser_page.get_by_role("button", name="Switch").click()

    expect_dashboard(browser_page, live_server, "Acme Sverige AB")
    expect(browser_page.get_by_role("status")).to_have_text(
        "You are now working in Acme Sverige AB."
    )
    expect(switcher).to_have_value(str(world.b.pk))

    # The choice is kept in the session; the message is shown once.
    browser_page.reload()
    expect_dashboard(browser_page, live_server, "Acme Sverige AB")
    expect(browser_page.get_by_role("status")).to_have_count(0)


def test_log_out(browser_page, live_server, world):
    log_in(browser_page, live_server, world.users[Role.COLLECTOR].email)
    expect_dashboard(browser_page, live_server, "Acme Norge AS")

    browser_page.get_by_role("button", name="Log out").click()

    expect(browser_page).to_have_url(f"{live_server.url}/accounts/login/")
    expect(browser_page.get_by_role("heading", name="Log in", level=1)).to_be_visible()
    expect(browser_page.get_by_role("button", name="Log out")).to_have_count(0)

    browser_page.goto(f"{live_server.url}/")
    expect(browser_page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    expect(browser_page.get_by_role("heading", name="Log in", level=1)).to_be_visible()


def test_pages_send_csp_and_log_no_errors(browser_page, live_server, world, console_errors):
    responses = []
    browser_page.on(
        "response",
        lambda response: (
            response.request.resource_type == "document" and responses.append(response)
        ),
    )

    log_in(browser_page, live_server, world.main_admin.email)
    expect_dashboard(browser_page, live_server, "Acme Norge AS")
    browser_page.get_by_label("Entity", exact=True).select_option(label="Acme Sverige AB")
    browser_page.get_by_role("button", name="Switch").click()
    expect_dashboard(browser_page, live_server, "Acme Sverige AB")
    # The stylesheet loaded (an inline or blocked one would leave the page unstyled).
    expect(browser_page.locator("header.topbar")).to_have_css("background-color", "rgb(20, 50, 79)")

    pages = [r for r in responses if r.status == 200]
    assert [r.url.removeprefix(live_server.url) for r in pages] == [
        "/accounts/login/",
        "/",
        "/",
    ]
    for response in pages:
        policy = response.header_value("content-security-policy")
        assert policy, f"no Content-Security-Policy on {response.url}"
        directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
        assert directives["default-src"] == ["'self'"]
        assert directives["script-src"] == ["'self'"]
        assert directives["style-src"] == ["'self'"]
        assert directives["frame-ancestors"] == ["'none'"]
    assert console_errors == []


def test_a_blocked_account_sees_when_to_try_again(browser_page, live_server, world, console_errors):
    email = world.users[Role.SALES].email
    for _ in range(4):
        log_in(browser_page, live_server, email, "Wrong-Battery-17!")
        expect(browser_page.get_by_role("alert")).to_have_text(LOGIN_ERROR)
    log_in(browser_page, live_server, email, "Wrong-Battery-17!")  # the fifth says so at once
    expect(browser_page.get_by_role("alert")).to_contain_text(LOGIN_ERROR)
    expect(browser_page.get_by_role("alert")).to_contain_text("Too many failed sign-in attempts.")

    log_in(browser_page, live_server, email)  # the right password, during the block

    alert = browser_page.get_by_role("alert")
    expect(alert).to_contain_text("Too many failed sign-in attempts.")
    expect(alert).to_contain_text(re.compile(r"Try again after \d\d:\d\d on \d{4}-\d\d-\d\d\."))
    expect(browser_page.get_by_role("button", name="Log out")).to_have_count(0)
    expect(browser_page.get_by_label("Email", exact=True)).to_have_value(email)
    expect(browser_page.get_by_label("Password", exact=True)).to_have_value("")
    # Chromium logs the page's own 429 status as a console error: that entry only is
    # expected.
    refused = [e for e in console_errors if "status of 429" in e]
    assert len(refused) == 1, console_errors
    console_errors.remove(refused[0])
