"""The IP allowlist: matching, the paused sign-in, SMS codes, limits, and the settings."""

import ipaddress
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.test import Client, override_settings

from accounts.models import User
from accounts.roles import Role
from security import sms
from security.allowlist import normalize_ip, parse_network, passes_all
from security.models import AllowedNetwork, AuditEvent, IpChallenge, SecurityPolicy
from tests.conftest import work_in
from tests.helpers import sign_in

OFFICE = "10.0.0.0/8"
HOME = "203.0.113.5"
NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def empty_outbox():
    sms.outbox.clear()
    yield
    sms.outbox.clear()


def net(text):
    return ipaddress.ip_network(text)


# --- Matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw,expected",
    [("10.1.2.3", "10.1.2.3"), ("::ffff:10.1.2.3", "10.1.2.3"), ("2001:db8::1", "2001:db8::1")],
)
def test_an_ipv4_mapped_address_is_read_as_ipv4(raw, expected):
    assert str(normalize_ip(raw)) == expected


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("203.0.113.7", "203.0.113.7/32"),
        ("203.0.113.9/24", "203.0.113.0/24"),
        (" 2001:db8::/48 ", "2001:db8::/48"),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
    ],
)
def test_networks_are_normalised(raw, expected):
    assert str(parse_network(raw)) == expected


@pytest.mark.parametrize(
    "raw,message",
    [
        ("", "Enter an address or network"),
        ("office", "is not an IP address or network"),
        ("10.0.0.0/33", "is not an IP address or network"),
        ("0.0.0.0/0", "would turn the allowlist off"),
    ],
)
def test_bad_networks_are_explained(raw, message):
    with pytest.raises(ValidationError, match=message):
        parse_network(raw)


@pytest.mark.parametrize(
    "address,lists,allowed",
    [
        ("10.1.2.3", [[net(OFFICE)]], True),
        ("203.0.113.5", [[net(OFFICE)]], False),
        ("10.1.2.3", [[net(OFFICE)], [net("10.1.0.0/16")]], True),
        ("10.2.0.1", [[net(OFFICE)], [net("10.1.0.0/16")]], False),  # must pass every list
        ("10.1.2.3", [[]], False),  # an empty list allows nobody
        ("2001:db8::5", [[net("2001:db8::/32")]], True),
        ("2001:db8::5", [[net(OFFICE)]], False),
    ],
)
def test_an_address_must_pass_every_list(address, lists, allowed):
    assert passes_all(normalize_ip(address), lists) is allowed


# --- The paused sign-in -------------------------------------------------------------------


@pytest.fixture
def office_only(world):
    policy = SecurityPolicy.objects.create(
        entity=world.a, ip_allowlist_enabled=True, ip_code_recipient="user"
    )
    AllowedNetwork.objects.create(policy=policy, network=OFFICE, label="Office")
    User.objects.filter(pk=world.users[Role.GUEST].pk).update(phone="+4791234567")
    return world


def last_code():
    return re.search(r"\b(\d{6})\b", sms.outbox[-1].body).group(1)


def test_a_sign_in_from_the_office_goes_straight_through(office_only, client):
    guest = office_only.users[Role.GUEST]
    sign_in(client, guest, "10.20.30.40")
    assert client.get("/", REMOTE_ADDR="10.20.30.40").status_code == 200
    assert sms.outbox == []


def test_an_ipv4_mapped_socket_address_matches_its_ipv4_entry(office_only, client):
    sign_in(client, office_only.users[Role.GUEST], "::ffff:10.1.2.3")
    assert client.get("/", REMOTE_ADDR="::ffff:10.1.2.3").status_code == 200


def test_a_sign_in_from_elsewhere_waits_for_the_texted_code(office_only, client):
    guest = office_only.users[Role.GUEST]
    sign_in(client, guest, HOME)
    assert [m.to for m in sms.outbox] == ["+4791234567"]
    assert HOME in sms.outbox[0].body
    for url in ("/", "/customers/", "/account/security/", "/settings/users/"):
        response = client.get(url, REMOTE_ADDR=HOME)
        assert response["Location"] == "/account/verify-address/", url
    page = client.get("/account/verify-address/", REMOTE_ADDR=HOME).content.decode()
    assert "A code was sent to +47 •• •• •• 67" in page

    wrong = client.post("/account/verify-address/", {"code": "000000"}, REMOTE_ADDR=HOME)
    if last_code() == "000000":  # one in a million
        pytest.skip("the random code happened to be 000000")
    assert "That code is not right. 4 tries left." in wrong.content.decode()

    before = client.session.session_key
    done = client.post("/account/verify-address/", {"code": last_code()}, REMOTE_ADDR=HOME)
    assert done["Location"] == "/"
    assert client.session.session_key != before  # rotated after the step
    assert client.get("/customers/", REMOTE_ADDR=HOME).status_code == 200

    entry = AllowedNetwork.objects.get(for_user=guest)
    assert (entry.network, entry.policy.entity) == (f"{HOME}/32", office_only.a)
    event = AuditEvent.objects.get(action="auth.ip.approved")
    assert event.actor == guest and event.data["ip"] == HOME


def test_an_approved_address_is_for_that_user_only(office_only):
    guest, sales = office_only.users[Role.GUEST], office_only.users[Role.SALES]
    AllowedNetwork.objects.create(
        policy=SecurityPolicy.objects.get(entity=office_only.a),
        network=f"{HOME}/32",
        for_user=guest,
    )
    User.objects.filter(pk=sales.pk).update(phone="+4791234568")
    assert work_in(Client(), guest, office_only.a).get("/", REMOTE_ADDR=HOME).status_code == 200
    other = work_in(Client(), sales, office_only.a)
    assert other.get("/", REMOTE_ADDR=HOME)["Location"] == "/account/verify-address/"


def test_a_session_that_moves_to_a_new_address_must_validate_again(office_only, client):
    guest = office_only.users[Role.GUEST]
    sign_in(client, guest, "10.1.1.1")
    assert client.get("/", REMOTE_ADDR="10.1.1.1").status_code == 200
    assert client.get("/", REMOTE_ADDR=HOME)["Location"] == "/account/verify-address/"
    send = client.post("/account/verify-address/", {"action": "send"}, REMOTE_ADDR=HOME)
    assert send.status_code == 302 and len(sms.outbox) == 1


def test_a_session_that_passed_skips_the_entries_until_one_changes(office_only, client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    office_ip = "10.20.30.40"
    sign_in(client, office_only.users[Role.GUEST], office_ip)
    assert client.get("/", REMOTE_ADDR=office_ip).status_code == 200
    with CaptureQueriesContext(connection) as later:
        assert client.get("/", REMOTE_ADDR=office_ip).status_code == 200
    assert not [q for q in later.captured_queries if "security_allowednetwork" in q["sql"]]

    # Any change to the entries is seen on the very next request of every session.
    AllowedNetwork.objects.create(
        policy=SecurityPolicy.objects.get(entity=office_only.a), network="192.0.2.0/24"
    )
    assert client.get("/", REMOTE_ADDR=office_ip).status_code == 200
    AllowedNetwork.objects.filter(network=OFFICE).delete()
    assert client.get("/", REMOTE_ADDR=office_ip)["Location"] == "/account/verify-address/"


def test_the_other_entity_without_allowlist_is_not_affected(office_only, client):
    assert (
        work_in(client, office_only.outsider, office_only.c).get("/", REMOTE_ADDR=HOME).status_code
        == 200
    )


@pytest.mark.parametrize(
    "elapsed,accepted", [(timedelta(minutes=9, seconds=59), True), (timedelta(minutes=10), False)]
)
def test_a_code_is_valid_for_ten_minutes(office_only, client, elapsed, accepted):
    with time_machine.travel(NOW, tick=False) as clock:
        sign_in(client, office_only.users[Role.GUEST], HOME)
        clock.move_to(NOW + elapsed)
        response = client.post("/account/verify-address/", {"code": last_code()}, REMOTE_ADDR=HOME)
    if accepted:
        assert response.status_code == 302
    else:
        assert "The code has expired. Ask for a new one." in response.content.decode()


def test_five_wrong_codes_kill_the_challenge(office_only, client):
    sign_in(client, office_only.users[Role.GUEST], HOME)
    code = last_code()
    wrong = "111111" if code != "111111" else "222222"
    for _ in range(5):
        client.post("/account/verify-address/", {"code": wrong}, REMOTE_ADDR=HOME)
    response = client.post("/account/verify-address/", {"code": code}, REMOTE_ADDR=HOME)
    assert response.status_code == 200
    assert client.get("/", REMOTE_ADDR=HOME)["Location"] == "/account/verify-address/"
    assert not AllowedNetwork.objects.filter(for_user__isnull=False).exists()
    assert AuditEvent.objects.filter(action="auth.ip.code_failed").count() == 5


def test_asking_for_a_new_code_after_five_wrong_ones_gives_no_new_tries(office_only, client):
    with time_machine.travel(NOW, tick=False) as clock:
        sign_in(client, office_only.users[Role.GUEST], HOME)
        wrong = "111111" if last_code() != "111111" else "222222"
        for _ in range(5):
            fifth = client.post("/account/verify-address/", {"code": wrong}, REMOTE_ADDR=HOME)
        assert "Too many wrong codes. Log out and sign in again" in fifth.content.decode()
        page = client.get("/account/verify-address/", REMOTE_ADDR=HOME).content.decode()
        assert "Too many wrong codes. Log out and sign in again" in page
        assert 'name="code"' not in page and 'value="send"' not in page
        clock.move_to(NOW + timedelta(hours=2))  # long after the resend wait
        again = client.post("/account/verify-address/", {"action": "send"}, REMOTE_ADDR=HOME)
        assert "Too many wrong codes. Log out and sign in again" in again.content.decode()
        assert len(sms.outbox) == 1
        assert IpChallenge.objects.count() == 1
        code = client.post("/account/verify-address/", {"code": last_code()}, REMOTE_ADDR=HOME)
    assert "Too many wrong codes" in code.content.decode()
    assert not AllowedNetwork.objects.filter(for_user__isnull=False).exists()


def test_switching_to_an_entity_whose_list_lacks_the_address_texts_the_code_once(
    office_only, client
):
    main_admin = office_only.main_admin
    User.objects.filter(pk=main_admin.pk).update(phone="+4798765432")
    with time_machine.travel(NOW, tick=False) as clock:
        sign_in(client, main_admin, HOME)  # lands in a: the sign-in texts a code
        assert len(sms.outbox) == 1
        client.post("/switch-entity/", {"entity": office_only.b.pk}, REMOTE_ADDR=HOME)
        clock.shift(timedelta(minutes=11))  # that code has expired meanwhile
        sms.outbox.clear()

        switched = client.post(
            "/switch-entity/", {"entity": office_only.a.pk}, REMOTE_ADDR=HOME, follow=True
        )
        assert switched.redirect_chain[-1][0] == "/account/verify-address/"
        assert "A code was sent to +47 •• •• •• 32" in switched.content.decode()
        assert [m.to for m in sms.outbox] == ["+4798765432"]

        # Back and forth within the code's 10 minutes: no more texts.
        clock.shift(timedelta(minutes=2))
        client.post("/switch-entity/", {"entity": office_only.b.pk}, REMOTE_ADDR=HOME)
        client.post("/switch-entity/", {"entity": office_only.a.pk}, REMOTE_ADDR=HOME)
        assert len(sms.outbox) == 1
        done = client.post("/account/verify-address/", {"code": last_code()}, REMOTE_ADDR=HOME)
    assert done.status_code == 302
    assert AllowedNetwork.objects.filter(for_user=main_admin).exists()


def test_a_new_sign_in_starts_a_new_challenge(office_only, client):
    guest = office_only.users[Role.GUEST]
    with time_machine.travel(NOW, tick=False) as clock:
        sign_in(client, guest, HOME)
        wrong = "111111" if last_code() != "111111" else "222222"
        for _ in range(5):
            client.post("/account/verify-address/", {"code": wrong}, REMOTE_ADDR=HOME)
        client.post("/accounts/logout/", REMOTE_ADDR=HOME)
        clock.shift(timedelta(minutes=1))
        sign_in(client, guest, HOME)
        done = client.post("/account/verify-address/", {"code": last_code()}, REMOTE_ADDR=HOME)
    assert done["Location"] == "/"
    assert AllowedNetwork.objects.filter(for_user=guest).exists()


def test_a_resend_waits_a_minute_and_keeps_the_failure_count(office_only, client):
    with time_machine.travel(NOW, tick=False) as clock:
        sign_in(client, office_only.users[Role.GUEST], HOME)
        first = last_code()
        wrong = "111111" if first != "111111" else "222222"
        for _ in range(2):
            client.post("/account/verify-address/", {"code": wrong}, REMOTE_ADDR=HOME)
        early = client.post("/account/verify-address/", {"action": "send"}, REMOTE_ADDR=HOME)
        assert "A code was sent less than a minute ago. Wait" in early.content.decode()
        clock.move_to(NOW + timedelta(minutes=1))
        client.post("/account/verify-address/", {"action": "send"}, REMOTE_ADDR=HOME)
        assert len(sms.outbox) == 2
        assert IpChallenge.objects.get().failures == 2
        old = client.post("/account/verify-address/", {"code": first}, REMOTE_ADDR=HOME)
        if first != last_code():
            assert "2 tries left." in old.content.decode()  # the old code no longer works


def test_sms_sending_is_capped_per_user(office_only, client):
    guest = office_only.users[Role.GUEST]
    with time_machine.travel(NOW, tick=False) as clock:
        for attempt in range(6):
            fresh = Client()
            sign_in(fresh, guest, f"198.51.100.{attempt}")
            clock.shift(timedelta(seconds=5))
        assert len(sms.outbox) == 5
        page = fresh.get("/account/verify-address/", REMOTE_ADDR="198.51.100.5", follow=True)
    assert "Too many codes were requested. Try again later." in page.content.decode()
    assert AuditEvent.objects.filter(action="sms.rate_limited", data__limit="user").exists()


def test_codes_go_to_the_administrators_when_the_policy_says_so(office_only, client):
    SecurityPolicy.objects.filter(entity=office_only.a).update(ip_code_recipient="admins")
    admin = office_only.users[Role.ADMIN]
    User.objects.filter(pk=admin.pk).update(phone="+4798765432")
    User.objects.filter(pk=office_only.main_admin.pk).update(phone="+4790000001")
    guest = office_only.users[Role.GUEST]
    sign_in(client, guest, HOME)
    assert sorted(m.to for m in sms.outbox) == ["+4790000001", "+4798765432"]
    assert guest.email in sms.outbox[0].body
    page = client.get("/account/verify-address/", REMOTE_ADDR=HOME).content.decode()
    assert "ask them for it" in page


def test_no_phone_on_file_is_explained(office_only, client):
    User.objects.filter(pk=office_only.users[Role.GUEST].pk).update(phone="")
    sign_in(client, office_only.users[Role.GUEST], HOME)
    page = client.get("/account/verify-address/", REMOTE_ADDR=HOME, follow=True).content.decode()
    assert "No mobile phone number is on file for you" in page
    assert AuditEvent.objects.filter(action="auth.ip.code_undeliverable").exists()


def test_a_provider_failure_is_explained_and_can_be_retried_at_once(
    office_only, client, fake_twilio
):
    fake_twilio.mode = "server_error"
    with override_settings(**fake_twilio.settings()):
        sign_in(client, office_only.users[Role.GUEST], HOME)
        page = client.get(
            "/account/verify-address/", REMOTE_ADDR=HOME, follow=True
        ).content.decode()
        assert "Traceback" not in page
        assert "could not be sent" in page or "cannot be sent" in page
        fake_twilio.mode = "ok"
        retry = client.post("/account/verify-address/", {"action": "send"}, REMOTE_ADDR=HOME)
    assert retry.status_code == 302
    assert fake_twilio.requests[-1].form["To"] == "+4791234567"


def test_every_applying_allowlist_must_pass_and_approval_fills_the_failing_one(world, client):
    group_policy = SecurityPolicy.objects.create(
        group=world.group, ip_allowlist_enabled=True, ip_code_recipient="user"
    )
    entity_policy = SecurityPolicy.objects.create(
        entity=world.a, ip_allowlist_enabled=True, ip_code_recipient="user"
    )
    AllowedNetwork.objects.create(policy=group_policy, network=OFFICE)
    AllowedNetwork.objects.create(policy=entity_policy, network="203.0.113.0/24")
    guest = world.users[Role.GUEST]
    User.objects.filter(pk=guest.pk).update(phone="+4791234567")
    sign_in(client, guest, HOME)  # in the entity's list, not the group's
    assert client.get("/", REMOTE_ADDR=HOME)["Location"] == "/account/verify-address/"
    client.post("/account/verify-address/", {"code": last_code()}, REMOTE_ADDR=HOME)
    assert client.get("/", REMOTE_ADDR=HOME).status_code == 200
    added = AllowedNetwork.objects.filter(for_user=guest)
    assert [entry.policy for entry in added] == [group_policy]


@override_settings(TRUSTED_PROXY_COUNT=1, TRUSTED_PROXY_NETWORKS=["10.0.0.0/8"])
def test_behind_a_trusted_proxy_the_forwarded_address_is_checked(office_only, client):
    guest = office_only.users[Role.GUEST]
    sign_in(client, guest, "10.9.9.9")
    response = client.get("/", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR=HOME)
    assert response["Location"] == "/account/verify-address/"


# --- Settings ------------------------------------------------------------------------------


def settings_form(**values):
    data = {
        "password_max_age_days": "",
        "inactivity_limit_months": "",
        "ip_code_recipient": "user",
        "interactive_link_days": "30",
        "document_link_days": "90",
    }
    data.update(values)
    return data


def test_turning_the_allowlist_on_that_would_shut_the_admin_out_asks_first(world, client):
    work_in(client, world.users[Role.ADMIN], world.a)
    refused = client.post(
        "/settings/security/", settings_form(ip_allowlist_enabled="on"), REMOTE_ADDR=HOME
    )
    assert f"Your current address {HOME} is not on the allowlist" in refused.content.decode()
    assert not SecurityPolicy.objects.filter(entity=world.a, ip_allowlist_enabled=True).exists()
    confirmed = client.post(
        "/settings/security/",
        settings_form(ip_allowlist_enabled="on", confirm_lockout="yes"),
        REMOTE_ADDR=HOME,
    )
    assert confirmed.status_code == 302
    assert SecurityPolicy.objects.get(entity=world.a).ip_allowlist_enabled


def test_admins_add_and_remove_networks_with_an_audit_trail(world, client):
    work_in(client, world.users[Role.ADMIN], world.a)
    bad = client.post(
        "/settings/security/networks/add/", {"level": "entity", "network": "office"}, follow=True
    )
    assert "is not an IP address or network" in bad.content.decode()
    added = client.post(
        "/settings/security/networks/add/",
        {"level": "entity", "network": "203.0.113.9/24", "label": "Home office"},
        follow=True,
    )
    assert (
        "203.0.113.0/24 was added to the entity-level allowlist (you typed 203.0.113.9/24: "
        "that is the whole network 203.0.113.0/24, 256 addresses)."
    ) in added.content.decode()
    entry = AllowedNetwork.objects.get()
    assert (entry.network, entry.label, entry.created_by) == (
        "203.0.113.0/24",
        "Home office",
        world.users[Role.ADMIN],
    )
    SecurityPolicy.objects.filter(entity=world.a).update(ip_allowlist_enabled=True)
    # Removing the entry that lets the admin in asks first.
    ask = client.post(f"/settings/security/networks/{entry.pk}/remove/", REMOTE_ADDR=HOME)
    assert f"Your current address, <strong>{HOME}</strong>" in ask.content.decode()
    assert AllowedNetwork.objects.filter(pk=entry.pk).exists()
    done = client.post(
        f"/settings/security/networks/{entry.pk}/remove/",
        {"confirm_lockout": "yes"},
        REMOTE_ADDR=HOME,
    )
    assert done.status_code == 302 and not AllowedNetwork.objects.exists()
    actions = list(
        AuditEvent.objects.filter(action__startswith="security.allowlist").values_list(
            "action", flat=True
        )
    )
    assert sorted(actions) == ["security.allowlist.added", "security.allowlist.removed"]


@pytest.mark.parametrize(
    "typed,message",
    [
        ("10.0.0.0/33", "is not an IP address or network"),
        ("fe80::1%eth0", "has a zone index (the part from %)"),
        ("0.0.0.0/0", "would turn the allowlist off"),
    ],
)
@pytest.mark.parametrize("level", ["entity", "group"])
def test_a_refused_network_comes_back_with_what_was_typed_and_the_error_beside_it(
    world, client, typed, message, level
):
    work_in(client, world.main_admin, world.a)
    response = client.post(
        "/settings/security/networks/add/",
        {"level": level, "network": typed, "label": "Oslo office, 3rd floor"},
    )
    assert response.status_code == 200
    page = response.content.decode()
    field = re.search(r'<div class="field has-error">.*?</div>', page, re.S).group(0)
    assert 'name="network"' in field and message in field
    assert f'value="{typed}"' in page
    assert 'value="Oslo office, 3rd floor"' in page
    assert f'<input type="hidden" name="level" value="{level}">' in page  # the same level
    assert not AllowedNetwork.objects.exists()


def test_only_the_main_admin_edits_the_multi_level_allowlist(world, client):
    work_in(client, world.users[Role.ADMIN], world.a)
    response = client.post(
        "/settings/security/networks/add/", {"level": "group", "network": OFFICE}
    )
    assert response.status_code == 403
    client.logout()
    work_in(client, world.main_admin, world.a)
    client.post("/settings/security/networks/add/", {"level": "group", "network": OFFICE})
    assert AllowedNetwork.objects.get().policy.group == world.group
