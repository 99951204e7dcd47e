"""Entity settings under a multi-level policy, in a real browser: the entity admin ticks
"Require two-factor authentication", leaves every other field empty (inheriting) and the
save goes through, as on the demo's Nordlys Inkasso AB."""

from playwright.sync_api import expect

from accounts.roles import Role
from security.models import SecurityPolicy
from tests.browser.test_login import expect_dashboard, log_in

REQUIRE_2FA = "Require two-factor authentication"
MAX_AGE = "Force a password change every (days)"
INACTIVITY = "Deactivate users inactive for (months)"


def field(page, label):
    """The block of one form field: its label, input, help text and errors."""
    return page.locator(".field").filter(has=page.get_by_label(label, exact=True))


def test_entity_admin_ticks_2fa_with_the_rest_inherited(browser_page, live_server, world):
    page = browser_page
    # Like the demo's Nordlys Group: 90 days, 12 months; the entity sets neither.
    SecurityPolicy.objects.create(
        group=world.group, password_max_age_days=90, inactivity_limit_months=12
    )

    log_in(page, live_server, world.users[Role.ADMIN].email)
    expect_dashboard(page, live_server, "Acme Norge AS")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Security settings", level=1)).to_be_visible()

    # Beside each field, what the multi-level policy sets and what empty means.
    expect(page.get_by_label(MAX_AGE, exact=True)).to_have_value("")
    expect(field(page, MAX_AGE).locator(".help")).to_contain_text(
        "Multi-level (Acme Group): 90. Empty: inherits it (90 applies)"
    )
    expect(field(page, INACTIVITY).locator(".help")).to_contain_text(
        "Multi-level (Acme Group): 12. Empty: inherits it (12 applies)"
    )
    # And what applies for every rule.
    applies = page.get_by_role("region", name="What applies in Acme Norge AS")
    expect(
        applies.get_by_role("row", name="Password maximum age (days)").get_by_role("cell")
    ).to_have_text(["Password maximum age (days)", "90", "Acme Group (multi-level)"])

    checkbox = page.get_by_label(REQUIRE_2FA, exact=True)
    expect(checkbox).not_to_be_checked()
    checkbox.check()
    page.get_by_role("button", name="Save", exact=True).click()

    # No refusal of the untouched fields: the usual confirmation of a stricter rule.
    expect(page.locator(".field-error")).to_have_count(0)
    confirm = page.get_by_role("alert").filter(has_text="Confirm the stricter rules")
    expect(confirm).to_be_visible()
    confirm.get_by_role("button", name="Save and apply").click()

    # Saved; the rule now holds the admin too, who is sent to set up an authenticator.
    expect(page).to_have_url(f"{live_server.url}/account/2fa/setup/")
    expect(
        page.get_by_text("Saved the entity-level policy. Two-factor authentication required: on.")
    ).to_be_visible()
    policy = SecurityPolicy.objects.get(entity=world.a)
    assert (policy.require_2fa, policy.password_max_age_days, policy.inactivity_limit_months) == (
        True,
        None,
        None,
    )
