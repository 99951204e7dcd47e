"""A sign-in from an unlisted address, approved with the code from the SMS outbox."""

import re

from playwright.sync_api import expect

from accounts.models import User
from accounts.roles import Role
from security import sms
from security.models import AllowedNetwork, SecurityPolicy
from tests.browser.test_login import expect_dashboard, log_in


def test_a_new_address_is_approved_with_the_texted_code(browser_page, live_server, world):
    policy = SecurityPolicy.objects.create(
        entity=world.a, ip_allowlist_enabled=True, ip_code_recipient="user"
    )
    AllowedNetwork.objects.create(policy=policy, network="10.0.0.0/8", label="Office")
    guest = world.users[Role.GUEST]
    User.objects.filter(pk=guest.pk).update(phone="+4791234567")
    sms.outbox.clear()
    page = browser_page

    log_in(page, live_server, guest.email)  # the browser comes from 127.0.0.1

    expect(page).to_have_url(f"{live_server.url}/account/verify-address/")
    expect(page.get_by_role("heading", name="Approve this address")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("A code was sent to +47 •• •• •• 67")
    page.goto(f"{live_server.url}/customers/")
    expect(page).to_have_url(f"{live_server.url}/account/verify-address/")

    [message] = sms.outbox
    assert message.to == "+4791234567" and "127.0.0.1" in message.body
    code = re.search(r"\b(\d{6})\b", message.body).group(1)
    page.get_by_label("Code", exact=True).fill(code)
    page.get_by_role("button", name="Approve").click()

    # The sign-in continues to the page it was going to (the dashboard).
    expect_dashboard(page, live_server, "Acme Norge AS")
    page.goto(f"{live_server.url}/customers/")
    expect(page).to_have_url(f"{live_server.url}/customers/")
    assert AllowedNetwork.objects.filter(for_user=guest, network="127.0.0.1/32").exists()
