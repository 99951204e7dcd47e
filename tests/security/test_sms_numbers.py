"""The numbers that receive validation codes (SMS pumping): only mobile numbers, only from
the countries the entity allows (when saved and again when sending), a new number used
only after the code texted to it is typed, its owner emailed when it changes, a cap per
number range next to the caps per user, address and entity (each audited when reached),
and no text at all when the caps cannot be counted."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client, override_settings
from phonenumbers import PhoneNumberType, example_number_for_type, format_number

from accounts.models import Membership, User
from accounts.roles import Role
from security import ratelimit
from security.models import AllowedNetwork, PhoneConfirmation, SecurityNotice, SecurityPolicy
from security.phones import mask_phone, normalize_phone
from security.settings_forms import ENTITY_FIELDS
from tests.conftest import make_user, work_in
from tests.helpers import ACCOUNT, actions, sign_in, text

ON_FILE = "+4791234567"  # Norwegian mobile (9xx xx xxx)
NEW = "+4741234589"  # Norwegian mobile (4xx xx xxx)
SWEDISH = "+46701234567"  # Swedish mobile (70 xxx xx xx)
OSLO_FIXED_LINE = "+47 22 12 34 56"
HOME = "203.0.113.5"
OFFICE_IP = "10.1.2.3"
SETTINGS = "/settings/security/"
VERIFY = "/account/verify-address/"
TOO_MANY = "Too many codes were requested. Try again later."
UNAVAILABLE = (
    "Text messages cannot be sent right now. Try again later or contact your administrator."
)
ONLY_MOBILES = "codes are sent only to mobile numbers. Enter a mobile phone number."
NOT_MOBILE = "This number cannot receive text messages. Enter a mobile phone number."
# A Redis server nobody listens to.
NO_REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
    }
}


def example(region, kind):
    number = example_number_for_type(region, kind)
    assert number is not None, (region, kind)
    return format_number(number, 0)  # E.164


def code_in(body):
    return re.search(r"\b(\d{6})\b", body).group(1)


def last_code(fake):
    return code_in(fake.requests[-1].form["Body"])


def confirm(client, code):
    """Type `code` for the new number; the page shown next."""
    return text(client.post(ACCOUNT, {"action": "confirm_phone", "code": code}, follow=True))


def other_than(code):
    return "111111" if code != "111111" else "222222"


def phone_of(user):
    return User.objects.get(pk=user.pk).phone


def entity_settings(policy, **changes):
    """The entity's Settings -> Security form as its page posts it, with `changes`."""
    data = {}
    for name in ENTITY_FIELDS:
        value = changes.get(name, getattr(policy, name))
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = value
    data.update(confirmed="yes", confirm_lockout="yes")
    return data


@pytest.fixture
def guest(world):
    user = world.users[Role.GUEST]
    User.objects.filter(pk=user.pk).update(phone=ON_FILE)
    user.refresh_from_db()
    return user


@pytest.fixture
def office_only(world):
    """Entity a allows only its office: sign-ins from elsewhere text the user a code."""
    policy = SecurityPolicy.objects.create(
        entity=world.a, ip_allowlist_enabled=True, ip_code_recipient="user"
    )
    AllowedNetwork.objects.create(policy=policy, network="10.0.0.0/8", label="Office")
    return policy


# --- Only mobile numbers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "number, kind",
    [
        (example("NO", PhoneNumberType.VOIP), "an internet telephony (VoIP) number"),
        (example("NO", PhoneNumberType.PERSONAL_NUMBER), "a personal (forwarding) number"),
        (example("NO", PhoneNumberType.PREMIUM_RATE), "a premium-rate number"),
        (example("SE", PhoneNumberType.PAGER), "a pager number"),
        (example("NO", PhoneNumberType.SHARED_COST), "a shared-cost number"),
    ],
)
def test_numbers_that_are_not_mobile_numbers_are_refused_saying_what_they_are(number, kind):
    with pytest.raises(ValidationError) as caught:
        normalize_phone(number)
    assert caught.value.messages == [f"This is {kind}: {ONLY_MOBILES}"]


def test_the_account_page_refuses_a_voip_number_and_texts_nothing(
    guest, world, client, fake_twilio
):
    work_in(client, guest, world.a)
    voip = example("NO", PhoneNumberType.VOIP)
    with override_settings(**fake_twilio.settings()):
        page = text(client.post(ACCOUNT, {"phone": voip}))
    assert f"This is an internet telephony (VoIP) number: {ONLY_MOBILES}" in page
    assert fake_twilio.requests == []
    assert phone_of(guest) == ON_FILE
    assert not PhoneConfirmation.objects.exists()

    fixed = text(client.post(ACCOUNT, {"phone": OSLO_FIXED_LINE}))
    assert NOT_MOBILE in fixed


# --- Countries the entity allows ----------------------------------------------------------


def test_by_default_only_numbers_of_the_default_region_are_accepted(guest, world, client):
    work_in(client, guest, world.a)
    assert SecurityPolicy(entity=world.a).sms_countries == ["NO"]

    page = text(client.post(ACCOUNT, {"phone": "+46 70 123 45 67"}))

    assert (
        "Codes can be sent only to mobile numbers from Norway (NO), and this number is from "
        "Sweden (SE)." in page
    )
    assert phone_of(guest) == ON_FILE
    assert not PhoneConfirmation.objects.exists()
    assert "A mobile number from Norway (NO)" in text(client.get(ACCOUNT))


@override_settings(PHONE_DEFAULT_REGION="SE")
def test_without_a_country_of_its_own_an_entity_defaults_to_the_default_region(
    guest, world, client
):
    assert SecurityPolicy.objects.create(entity=world.a).sms_countries == ["SE"]
    work_in(client, guest, world.a)

    page = text(client.post(ACCOUNT, {"phone": "+47 412 34 589"}))

    assert "only to mobile numbers from Sweden (SE), and this number is from Norway (NO)" in page


def test_an_admin_allows_more_countries_and_the_save_is_audited(guest, world, client):
    admin = world.users[Role.ADMIN]
    work_in(client, admin, world.a)
    client.get(SETTINGS)  # creates the policy row
    policy = SecurityPolicy.objects.get(entity=world.a)
    assert 'name="sms_countries" value="NO"' in text(client.get(SETTINGS))

    bad = text(client.post(SETTINGS, entity_settings(policy, sms_countries="NO, XX")))
    assert "“XX” is not a country code. Use two-letter codes (ISO 3166)" in bad
    saved = client.post(SETTINGS, entity_settings(policy, sms_countries="se, no"), follow=True)

    assert SecurityPolicy.objects.get(entity=world.a).sms_countries == ["NO", "SE"]
    said = "Countries whose mobile numbers may receive codes: Norway (NO), Sweden (SE)."
    assert said in text(saved)
    event = actions("security.settings.changed").get()
    assert event.data["changes"] == {"sms_countries": [["NO"], ["NO", "SE"]]}
    emptied = client.post(SETTINGS, entity_settings(policy, sms_countries=""), follow=True)
    assert SecurityPolicy.objects.get(entity=world.a).sms_countries == ["NO"]  # the default
    assert "Norway (NO)." in text(emptied)

    SecurityPolicy.objects.filter(entity=world.a).update(sms_countries=["NO", "SE"])
    work_in(client, guest, world.a)
    client.post(ACCOUNT, {"phone": "+46 70 123 45 67"})
    assert PhoneConfirmation.objects.get(user=guest).phone == SWEDISH


def test_a_country_removed_later_stops_codes_to_numbers_saved_before(
    guest, world, office_only, fake_twilio
):
    SecurityPolicy.objects.filter(pk=office_only.pk).update(sms_countries=["NO", "SE"])
    User.objects.filter(pk=guest.pk).update(phone=SWEDISH)
    admin = world.users[Role.ADMIN]
    client = work_in(Client(REMOTE_ADDR=OFFICE_IP), admin, world.a)
    client.post(
        SETTINGS, entity_settings(SecurityPolicy.objects.get(pk=office_only.pk), sms_countries="NO")
    )
    assert SecurityPolicy.objects.get(pk=office_only.pk).sms_countries == ["NO"]

    signing_in = Client()
    with override_settings(**fake_twilio.settings()):
        sign_in(signing_in, guest, HOME)
        page = text(signing_in.get(VERIFY, REMOTE_ADDR=HOME, follow=True))

    assert fake_twilio.requests == []  # Twilio never heard of it
    assert "is not from a country whose numbers may receive codes here" in page
    event = actions("auth.ip.code_sent").get()
    assert (event.data["delivered"], event.data["failed"]) == (0, 1)


def test_a_country_removed_before_the_number_is_confirmed_keeps_it_out(
    guest, world, client, fake_twilio
):
    SecurityPolicy.objects.create(entity=world.a, sms_countries=["NO", "SE"])
    work_in(client, guest, world.a)
    with override_settings(**fake_twilio.settings()):
        client.post(ACCOUNT, {"phone": "+46 70 123 45 67"})
    SecurityPolicy.objects.filter(entity=world.a).update(sms_countries=["NO"])

    page = confirm(client, last_code(fake_twilio))

    assert "only to mobile numbers from Norway (NO), and this number is from Sweden (SE)" in page
    assert phone_of(guest) == ON_FILE
    assert not PhoneConfirmation.objects.exists()


# --- A new number is confirmed by a code texted to it -------------------------------------


def test_a_new_number_is_used_only_after_the_code_texted_to_it(
    guest, world, office_only, fake_twilio, clock
):
    client = work_in(Client(REMOTE_ADDR=OFFICE_IP), guest, world.a)
    with override_settings(**fake_twilio.settings()):
        page = text(client.post(ACCOUNT, {"phone": "412 34 589"}, follow=True))
    [texted] = fake_twilio.requests
    assert texted.form["To"] == NEW
    code = code_in(texted.form["Body"])
    assert f"A code was sent to {mask_phone(NEW)}." in page
    assert f"Waiting for the code texted to {mask_phone(NEW)}" in page
    assert phone_of(guest) == ON_FILE
    assert not actions("account.phone.changed").exists()

    # Meanwhile sign-in codes still go to the number on file.
    with override_settings(**fake_twilio.settings()):
        sign_in(Client(), guest, HOME)
    assert fake_twilio.requests[-1].form["To"] == ON_FILE

    wrong = confirm(client, other_than(code))
    assert "That code is not right. 4 tries left." in wrong
    assert phone_of(guest) == ON_FILE

    done = confirm(client, code)

    assert "Your mobile phone number was saved." in done
    assert f"On file: {mask_phone(NEW)}." in done
    assert phone_of(guest) == NEW
    assert not PhoneConfirmation.objects.exists()
    event = actions("account.phone.changed").get()
    assert event.data == {"old": mask_phone(ON_FILE), "new": mask_phone(NEW)}
    again = confirm(client, code)
    assert "No new number is waiting for a code." in again


def test_five_wrong_codes_drop_the_new_number(guest, world, client, fake_twilio):
    work_in(client, guest, world.a)
    with override_settings(**fake_twilio.settings()):
        client.post(ACCOUNT, {"phone": NEW})
    code = last_code(fake_twilio)
    for _ in range(4):
        confirm(client, other_than(code))

    fifth = confirm(client, other_than(code))
    right = confirm(client, code)

    assert "Too many wrong codes: the new number was not saved." in fifth
    assert "No new number is waiting for a code." in right
    assert phone_of(guest) == ON_FILE
    assert actions("account.phone.code_failed").count() == 5


def test_a_code_expires_after_ten_minutes_and_a_new_one_can_be_asked_for(
    guest, world, client, fake_twilio, clock
):
    work_in(client, guest, world.a)
    with override_settings(**fake_twilio.settings()):
        client.post(ACCOUNT, {"phone": NEW})
        early = client.post(ACCOUNT, {"action": "resend_phone"}, follow=True)
        assert "A code was sent less than a minute ago. Wait" in text(early)
        first = last_code(fake_twilio)
        clock.shift(timedelta(minutes=10))
        late = confirm(client, first)
        assert "The code has expired. Ask for a new one." in late
        client.post(ACCOUNT, {"action": "resend_phone"})

    assert [r.form["To"] for r in fake_twilio.requests] == [NEW, NEW]
    confirm(client, last_code(fake_twilio))
    assert phone_of(guest) == NEW


def test_a_failed_text_keeps_the_number_on_file_and_can_be_retried_at_once(
    guest, world, client, fake_twilio
):
    work_in(client, guest, world.a)
    fake_twilio.mode = "server_error"
    with override_settings(**fake_twilio.settings()):
        page = text(client.post(ACCOUNT, {"phone": NEW}))
        assert "The text message could not be sent. Try again in a minute." in page
        fake_twilio.mode = "ok"
        client.post(ACCOUNT, {"action": "resend_phone"})
    assert fake_twilio.requests[-1].form["To"] == NEW
    confirm(client, last_code(fake_twilio))
    assert phone_of(guest) == NEW


# --- The owner is emailed when the number changes -----------------------------------------


def test_the_owner_is_emailed_when_the_number_changes_or_is_removed(
    guest, world, client, fake_twilio, django_capture_on_commit_callbacks
):
    work_in(client, guest, world.a)
    with django_capture_on_commit_callbacks(execute=True):
        with override_settings(**fake_twilio.settings()):
            client.post(ACCOUNT, {"phone": NEW})
        assert mail.outbox == []  # asking for a code changes nothing yet
        confirm(client, last_code(fake_twilio))

    [changed] = mail.outbox
    assert changed.to == [guest.email]
    assert changed.subject == "The mobile phone number of your account was changed"
    assert f"from {mask_phone(ON_FILE)} to {mask_phone(NEW)}" in changed.body
    assert "If this was not you" in changed.body
    for digits in ("91234567", "41234589"):
        assert digits not in changed.body
    assert SecurityNotice.objects.get().kind == SecurityNotice.Kind.PHONE_CHANGED

    with django_capture_on_commit_callbacks(execute=True):
        removed = client.post(ACCOUNT, {"phone": ""}, follow=True)
    assert "Your mobile phone number was removed." in text(removed)
    assert phone_of(guest) == ""
    assert f"The mobile phone number {mask_phone(NEW)} was removed" in mail.outbox[-1].body


# --- Caps, each audited when reached ------------------------------------------------------


def people(world, count, entity=None, tag="person"):
    users = []
    for n in range(count):
        user = make_user(f"{tag}-{n}@{(entity or world.a).slug}.example")
        Membership.objects.create(user=user, entity=entity or world.a, role=Role.GUEST)
        users.append(user)
    return users


def ask_for_code(user, entity, phone, ip):
    client = work_in(Client(), user, entity)
    return text(client.post(ACCOUNT, {"phone": phone}, REMOTE_ADDR=ip))


def test_at_most_ten_codes_an_hour_go_to_one_number_range_across_the_platform(world):
    # Numbers equal but for their last four digits, in two entities of different companies.
    users = people(world, 6) + people(world, 6, entity=world.c)[:5]
    numbers = [f"+4741230{n:03d}" for n in range(len(users))]
    pages = [
        ask_for_code(user, user.memberships.get().entity, phone, f"198.51.100.{n}")
        for n, (user, phone) in enumerate(zip(users, numbers, strict=True))
    ]

    assert [TOO_MANY in page for page in pages] == [False] * 10 + [True]
    assert PhoneConfirmation.objects.count() == 10
    assert not PhoneConfirmation.objects.filter(phone=numbers[-1]).exists()
    event = actions("sms.rate_limited").get()
    assert (event.data["limit"], event.data["prefix"]) == ("prefix", "+474123XXXX")
    # Another range is not affected.
    assert TOO_MANY not in ask_for_code(users[-1], world.c, "+4741240000", "198.51.100.99")
    assert PhoneConfirmation.objects.get(user=users[-1]).phone == "+4741240000"


@pytest.mark.parametrize("cap", ["user", "ip", "entity", "prefix"])
def test_every_cap_that_is_reached_is_audited(world, clock, monkeypatch, cap):
    if cap == "entity":  # 200 a day: three will do
        monkeypatch.setattr(ratelimit, "ENTITY_CAP", ratelimit.Cap("entity", 3, 86400))
    limit = {"user": 5, "ip": 10, "entity": 3, "prefix": 10}[cap]
    one = people(world, 1, tag="one")[0]
    users = [one] * (limit + 1) if cap == "user" else people(world, limit + 1)
    pages = []
    for n, user in enumerate(users):
        ip = "198.51.100.1" if cap == "ip" else f"198.51.100.{n}"
        number = f"+474123{n:04d}" if cap == "prefix" else f"+4741{n:02d}0000"
        pages.append(ask_for_code(user, world.a, number, ip))
        clock.shift(timedelta(seconds=61))  # past the wait between two codes
    assert TOO_MANY in pages[-1] and not any(TOO_MANY in page for page in pages[:-1])
    event = actions("sms.rate_limited").get()
    assert event.data["limit"] == cap
    assert event.data["purpose"] == "phone_confirmation"
    assert event.entity == world.a and event.actor == users[-1]


# --- Without the shared cache, no codes ---------------------------------------------------


def test_without_redis_no_sign_in_code_is_sent_and_the_user_is_told(
    guest, world, office_only, fake_twilio
):
    client = Client()
    with override_settings(CACHES=NO_REDIS, **fake_twilio.settings()):
        sign_in(client, guest, HOME)
        page = client.get(VERIFY, REMOTE_ADDR=HOME, follow=True)
    assert page.status_code == 200
    assert UNAVAILABLE in text(page)
    assert fake_twilio.requests == []
    assert actions("sms.rate_limit_unavailable", data__purpose="ip_code").exists()


def test_without_redis_no_confirmation_code_is_sent_and_the_number_stays(
    guest, world, client, fake_twilio
):
    work_in(client, guest, world.a)
    with override_settings(CACHES=NO_REDIS, **fake_twilio.settings()):
        response = client.post(ACCOUNT, {"phone": NEW})
    assert response.status_code == 200
    assert UNAVAILABLE in text(response)
    assert fake_twilio.requests == []
    assert not PhoneConfirmation.objects.exists()
    assert phone_of(guest) == ON_FILE
    assert actions("sms.rate_limit_unavailable", data__purpose="phone_confirmation").exists()
