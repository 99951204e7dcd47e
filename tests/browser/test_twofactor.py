"""Two-factor authentication as people use it: an admin requires it, a user enrols with
the key shown on the page, and the next sign-in asks for a code. In a real browser."""

import base64
import re
import time

from django_otp.oath import TOTP
from playwright.sync_api import expect

from accounts.roles import Role
from security.models import EncryptedTOTPDevice
from tests.browser.test_login import expect_dashboard, log_in

REQUIRE_2FA = "Require two-factor authentication"
SETUP_REQUIRED = "Your organisation requires two-factor authentication. Set it up to continue."


def log_out(page, live_server):
    page.locator("header").get_by_role("button", name="Log out", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/accounts/login/")


def code_for_step(key, step):
    totp = TOTP(key)
    totp.time = step * totp.step
    return f"{totp.token():06d}"


def fresh_code(key, user):
    """The code an app shows next: from the current time step, or the next one when the
    current one was used already (the window's tolerance of one step accepts it)."""
    device = EncryptedTOTPDevice.objects.get(user=user, confirmed=True)
    step = max(device.last_t + 1, int(time.time()) // device.step + device.drift)
    return code_for_step(key, step)


def test_required_2fa_enrolment_then_sign_in_with_a_code(browser_page, live_server, world):
    page = browser_page
    admin, guest = world.users[Role.ADMIN], world.users[Role.GUEST]

    # An admin requires 2FA for the entity.
    log_in(page, live_server, admin.email)
    expect_dashboard(page, live_server, "Acme Norge AS")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Security settings", level=1)).to_be_visible()
    checkbox = page.get_by_label(REQUIRE_2FA, exact=True)
    expect(checkbox).not_to_be_checked()
    checkbox.check()
    page.get_by_role("button", name="Save", exact=True).click()
    # Nobody has an authenticator yet: the admin confirms, knowing how many must enrol.
    confirm = page.get_by_role("alert").filter(has_text="Confirm the stricter rules")
    expect(confirm).to_contain_text(
        "users without an authenticator app must set one up before they can go on working."
    )
    confirm.get_by_role("button", name="Save and apply").click()
    # The rule holds the admin too.
    expect(page).to_have_url(f"{live_server.url}/account/2fa/setup/")
    expect(
        page.get_by_text("Saved the entity-level policy. Two-factor authentication required: on.")
    ).to_be_visible()
    expect(page.get_by_text(SETUP_REQUIRED)).to_be_visible()
    log_out(page, live_server)

    # A user of the entity signs in and must enrol first.
    log_in(page, live_server, guest.email)
    expect(page).to_have_url(f"{live_server.url}/account/2fa/setup/")
    expect(page.get_by_role("heading", name="Set up an authenticator app", level=1)).to_be_visible()
    expect(page.get_by_text(SETUP_REQUIRED)).to_be_visible()
    expect(page.locator(".qr svg")).to_be_visible()
    shown_key = page.get_by_test_id("totp-secret").inner_text()
    key = base64.b32decode(shown_key.replace(" ", ""))
    totp = TOTP(key)
    page.get_by_label("Code", exact=True).fill(f"{totp.token():06d}")
    page.get_by_role("button", name="Confirm").click()

    expect(
        page.get_by_role("heading", name="Two-factor authentication is on", level=1)
    ).to_be_visible()
    codes = page.get_by_test_id("backup-codes").get_by_role("listitem")
    expect(codes).to_have_count(10)
    expect(codes.first).to_have_text(re.compile(r"^[2-9a-z]{5}-[2-9a-z]{5}$"))
    page.get_by_role("link", name="Continue").click()
    expect_dashboard(page, live_server, "Acme Norge AS")
    expect(page.get_by_test_id("backup-codes")).to_have_count(0)
    log_out(page, live_server)

    # The next sign-in asks for a code from the app.
    log_in(page, live_server, guest.email)
    expect(page).to_have_url(f"{live_server.url}/account/2fa/verify/")
    expect(page.get_by_role("heading", name="Enter your code", level=1)).to_be_visible()
    page.goto(f"{live_server.url}/customers/")
    expect(page).to_have_url(f"{live_server.url}/account/2fa/verify/")
    page.get_by_label("Code", exact=True).fill(fresh_code(key, guest))
    page.get_by_role("button", name="Continue").click()

    expect(page).to_have_url(f"{live_server.url}/")
    expect_dashboard(page, live_server, "Acme Norge AS")
