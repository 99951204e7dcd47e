"""Settings -> Security as admins use it, and the forced password change it leads to:
in a real browser."""

import re
from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import User
from accounts.roles import Role
from tests.browser.test_login import expect_dashboard, log_in
from tests.conftest import PASSWORD

MAX_AGE = "Force a password change every (days)"
NEW_PASSWORD = "Fresh-Passw0rd-2026!"
SHORT_PASSWORD_ERRORS = [
    "The password must be at least 9 characters long.",
    "The password must contain a digit.",
    "The password must contain an uppercase letter.",
    "The password must contain a special character, such as ! ? # - or %.",
]


def field(page, label):
    """The block of one form field: its label, input, help text and errors."""
    return page.locator(".field").filter(has=page.get_by_label(label, exact=True))


def open_settings(page):
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Security settings", level=1)).to_be_visible()


def log_out(page, live_server):
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{live_server.url}/accounts/login/")


def expect_password_change_page(page, live_server):
    expect(page).to_have_url(f"{live_server.url}/accounts/password/change/")
    expect(page.get_by_role("heading", name="Change your password", level=1)).to_be_visible()


def change_password(page, old, new):
    page.get_by_label("Old password", exact=True).fill(old)
    page.get_by_label("New password", exact=True).fill(new)
    page.get_by_label("New password confirmation", exact=True).fill(new)
    page.get_by_role("button", name="Change password").click()


def test_stricter_password_age_forces_a_change_at_next_sign_in(browser_page, live_server, world):
    page = browser_page
    guest = world.users[Role.GUEST]
    # The only user of entity a (or of its multi-entity access) with an old password.
    User.objects.filter(pk=guest.pk).update(password_changed_at=timezone.now() - timedelta(days=45))

    log_in(page, live_server, world.users[Role.ADMIN].email)
    expect_dashboard(page, live_server, "Acme Norge AS")
    open_settings(page)
    expect(page).to_have_url(f"{live_server.url}/settings/security/")
    page.get_by_label(MAX_AGE, exact=True).fill("30")
    page.get_by_role("button", name="Save", exact=True).click()

    confirmation = page.get_by_role("alert")
    expect(confirmation.get_by_role("heading", name="Confirm the stricter rules")).to_be_visible()
    expect(confirmation.get_by_role("listitem")).to_have_text(
        ["1 user must change their password at their next sign-in."]
    )
    confirmation.get_by_role("button", name="Save and apply").click()

    expect(page).to_have_url(f"{live_server.url}/settings/security/")
    expect(page.get_by_role("status")).to_have_text(
        "Saved the entity-level policy. Password maximum age (days): 30."
    )
    expect(page.get_by_label(MAX_AGE, exact=True)).to_have_value("30")
    log_out(page, live_server)

    # The guest signs in and is sent to the change form, from every page.
    expired = "Your password is older than 30 days. Choose a new one to continue."
    log_in(page, live_server, guest.email)
    expect_password_change_page(page, live_server)
    expect(page.get_by_role("status")).to_have_text(expired)
    page.goto(f"{live_server.url}/")
    expect_password_change_page(page, live_server)
    expect(page.get_by_role("status")).to_have_text(expired)

    # A password that breaks the rules: one message per broken rule, by the field.
    change_password(page, PASSWORD, "short")
    expect_password_change_page(page, live_server)
    expect(field(page, "New password confirmation").get_by_role("alert")).to_have_text(
        SHORT_PASSWORD_ERRORS
    )

    change_password(page, PASSWORD, NEW_PASSWORD)
    expect_dashboard(page, live_server, "Acme Norge AS")
    expect(page.get_by_role("status")).to_have_text("Your password was changed.")
    page.goto(f"{live_server.url}/")
    expect_dashboard(page, live_server, "Acme Norge AS")


def test_entity_admin_cannot_loosen_the_multi_level_password_age(browser_page, live_server, world):
    page = browser_page

    log_in(page, live_server, world.main_admin.email)
    expect_dashboard(page, live_server, "Acme Norge AS")
    open_settings(page)
    page.get_by_role("navigation", name="Levels").get_by_role(
        "link", name="Acme Group (multi-level)"
    ).click()
    expect(page).to_have_url(f"{live_server.url}/settings/security/multi-level/")
    page.get_by_label(MAX_AGE, exact=True).fill("30")
    page.get_by_role("button", name="Save", exact=True).click()
    # Every password in the group is fresh: nobody is affected, nothing to confirm.
    expect(page).to_have_url(f"{live_server.url}/settings/security/multi-level/")
    expect(page.get_by_role("status")).to_have_text(
        "Saved the multi-level policy. Password maximum age (days): 30."
    )
    log_out(page, live_server)

    log_in(page, live_server, world.users[Role.ADMIN].email)
    expect_dashboard(page, live_server, "Acme Norge AS")
    open_settings(page)
    max_age = field(page, MAX_AGE)
    expect(max_age.locator(".help")).to_contain_text("Multi-level (Acme Group): 30.")
    page.get_by_label(MAX_AGE, exact=True).fill("60")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Save", exact=True).click()
    # The form comes back with its errors (like every form here), not a redirect.
    assert posted.value.status == 200
    expect(page.get_by_role("button", name="Save", exact=True)).to_be_visible()

    expect(max_age.get_by_role("alert")).to_have_text(
        "The multi-level policy sets 30; this entity can only set 30 or less."
    )
    expect(max_age.locator(".help")).to_contain_text("Multi-level (Acme Group): 30.")
    expect(page.get_by_label(MAX_AGE, exact=True)).to_have_value("60")
    expect(page.get_by_role("status")).to_have_count(0)
    # Nothing was saved.
    open_settings(page)
    expect(page.get_by_label(MAX_AGE, exact=True)).to_have_value("")
    expect(page).not_to_have_url(re.compile(r"multi-level"))
