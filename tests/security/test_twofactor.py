"""Two-factor authentication: enrolment, the code step of signing in, replay and
throttling, backup codes, the policy that requires it, admin reset, key rotation, and the
phone number on the account security page."""

import base64
import json
import os
import re
import threading
import time
from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from cryptography.fernet import Fernet, InvalidToken
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP

from accounts.models import Membership, User, UserSession
from accounts.roles import Role
from security import twofactor
from security.crypto import DecryptionError, encrypt
from security.models import (
    AuditEvent,
    BackupCode,
    BackupCodeDevice,
    EncryptedTOTPDevice,
    SecurityPolicy,
)
from security.phones import mask_phone
from security.selectors import users_in_scope
from security.settings_forms import ENTITY_FIELDS
from tests.conftest import PASSWORD, make_user, work_in

LOGIN = "/accounts/login/"
LOGOUT = "/accounts/logout/"
SETUP = "/account/2fa/setup/"
VERIFY = "/account/2fa/verify/"
BACKUP = "/account/2fa/backup-codes/"
REMOVE = "/account/2fa/remove/"
ACCOUNT = "/account/security/"

# 12:00:05 UTC: five seconds into a 30-second TOTP step (whole minutes divide by 30).
START = datetime(2026, 6, 1, 12, 0, 5, tzinfo=UTC)

WRONG_AT_SETUP = "That code is not right. Check the time on your phone and try the newest code."
WRONG_AT_SIGN_IN = "That code is not right. Try the newest code from your app, or a backup code."
SETUP_REQUIRED = "Your organisation requires two-factor authentication. Set it up to continue."
BACKUP_CODE_RE = re.compile(r"^[2-9a-z]{5}-[2-9a-z]{5}$")


@pytest.fixture
def clock():
    """Frozen time; `clock.shift(seconds)` moves it."""
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


# --- Helpers ------------------------------------------------------------------------------


def code_at(device, steps=0):
    """The code the user's app shows `steps` time steps from now."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits)
    totp.time = time.time() + steps * device.step
    return f"{totp.token():0{device.digits}d}"


def wrong_code(device):
    """A well-formed code that no step of the tolerance window accepts."""
    near = {code_at(device, steps) for steps in (-1, 0, 1)}
    return next(c for c in (f"{d}" * 6 for d in range(10)) if c not in near)


def give_authenticator(user):
    """An enrolled authenticator and fresh backup codes, as enrolment leaves them."""
    device = EncryptedTOTPDevice.objects.create(
        user=user, name="Authenticator app", confirmed=True, encrypted_key=encrypt(os.urandom(20))
    )
    codes = twofactor.regenerate_backup_codes(user, request=None)
    mail.outbox.clear()
    return device, codes


def work_in_verified(client, user, entity, device):
    """`work_in`, with the session already past the code step (as django_otp.login does)."""
    work_in(client, user, entity)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def sign_in(client, user):
    response = client.post(LOGIN, {"username": user.email, "password": PASSWORD})
    assert response.status_code == 302, "the password step failed"
    return response


def enter_code(client, code):
    return client.post(VERIFY, {"code": code})


def sign_in_with_code(client, user, code):
    sign_in(client, user)
    return enter_code(client, code)


def session_key(client):
    return client.cookies["sessionid"].value


def text(response):
    return response.content.decode()


def shown_backup_codes(response):
    content = text(response)
    block = re.search(r'data-testid="backup-codes">(.*?)</ul>', content, re.S)
    return re.findall(r"<code>([^<]+)</code>", block.group(1)) if block else []


def pending_device(user):
    return EncryptedTOTPDevice.objects.get(user=user, confirmed=False)


def actions(action, **filters):
    return AuditEvent.objects.filter(action=action, **filters)


def signed_out(client):
    response = client.get("/")
    return response.status_code == 302 and response["Location"].startswith(LOGIN)


def policy_data(policy, **changes):
    """The Settings -> Security form as posted: the policy's values, with `changes`."""
    data = {}
    for name in ENTITY_FIELDS:
        value = changes.get(name, getattr(policy, name))
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        else:
            data[name] = "" if value is None else value
    return data


# --- Enrolment ----------------------------------------------------------------------------


def test_the_setup_page_shows_an_inline_qr_code_and_the_key(world, client):
    user = world.users[Role.GUEST]
    response = work_in(client, user, world.a).get(SETUP)
    assert response.status_code == 200
    content = text(response)
    device = pending_device(user)

    svg = re.search(
        r'<div class="qr" role="img" aria-label="[^"]+">\s*(<svg.*?</svg>)\s*</div>', content, re.S
    )
    assert svg, "no inline <svg> QR code"
    assert "<path" in svg.group(1)
    # Drawn here: no image, no script, no link to a QR service or anything else.
    assert "<img" not in content
    assert not re.search(r"<script|href=|src=", svg.group(1))
    assert re.findall(r"https?://[^\s\"'<>]+", svg.group(1)) == ["http://www.w3.org/2000/svg"]

    secret = re.search(r'data-testid="totp-secret">([^<]+)<', content).group(1)
    assert re.fullmatch(r"[A-Z2-7]{4}( [A-Z2-7]{4})*", secret)
    assert base64.b32decode(secret.replace(" ", "")) == device.bin_key
    # The same pending key until it is confirmed; nothing is on yet.
    assert re.search(r'data-testid="totp-secret">([^<]+)<', text(client.get(SETUP))).group(1) == (
        secret
    )
    assert not device.confirmed
    assert not twofactor.has_second_factor(user)
    assert not BackupCodeDevice.objects.filter(user=user).exists()
    # Set up by choice: the way back is to the account page, not out.
    assert '<a href="/account/security/">Cancel</a>' in content
    assert "Log out instead" not in content


def test_a_wrong_code_leaves_the_authenticator_off(
    world, client, clock, django_capture_on_commit_callbacks
):
    user = world.users[Role.GUEST]
    work_in(client, user, world.a).get(SETUP)
    device = pending_device(user)

    with django_capture_on_commit_callbacks(execute=True):  # what it queues is sent
        response = client.post(SETUP, {"code": wrong_code(device)})

    assert response.status_code == 200
    assert WRONG_AT_SETUP in text(response)
    assert 'data-testid="totp-secret"' in text(response)  # the same page, to try again
    assert not pending_device(user).confirmed
    assert not twofactor.has_second_factor(user)
    assert not BackupCode.objects.filter(device__user=user).exists()
    assert DEVICE_ID_SESSION_KEY not in client.session
    assert mail.outbox == []
    assert actions("auth.2fa.enrolment_failed", actor=user).count() == 1
    assert not actions("auth.2fa.enabled").exists()


def test_after_wrong_codes_at_setup_the_right_one_says_to_wait_instead_of_wrong(
    world, client, clock
):
    user = world.users[Role.GUEST]
    work_in(client, user, world.a).get(SETUP)
    device = pending_device(user)
    wrong = wrong_code(device)
    for pause in (1, 2):  # 1 failure: the next check waits 1 s; 2 failures: 2 s
        assert WRONG_AT_SETUP in text(client.post(SETUP, {"code": wrong}))
        clock.shift(pause)
    assert WRONG_AT_SETUP in text(client.post(SETUP, {"code": wrong}))  # 3 failures: 4 s

    refused = client.post(SETUP, {"code": code_at(pending_device(user))})
    assert "Too many wrong codes. Wait 4 seconds and try again." in text(refused)
    assert WRONG_AT_SETUP not in text(refused)
    assert not pending_device(user).confirmed
    assert actions("auth.2fa.enrolment_failed", actor=user).count() == 3

    clock.shift(4)
    done = client.post(SETUP, {"code": code_at(pending_device(user))})
    assert "Two-factor authentication is on" in text(done)
    assert twofactor.has_second_factor(user)


def test_a_valid_code_turns_it_on_once_and_ends_the_other_sessions(
    world, client, clock, django_capture_on_commit_callbacks
):
    user = world.users[Role.GUEST]
    elsewhere = work_in(Client(), user, world.a)
    work_in(client, user, world.a).get(SETUP)
    device = pending_device(user)

    # The notice is queued in the outbox and sent by the task once the request commits.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(SETUP, {"code": code_at(device)})

    assert response.status_code == 200
    assert "Two-factor authentication is on" in text(response)
    codes = shown_backup_codes(response)
    assert len(codes) == twofactor.BACKUP_CODE_COUNT == 10
    assert len(set(codes)) == 10
    assert all(BACKUP_CODE_RE.match(code) for code in codes)
    device.refresh_from_db()
    assert device.confirmed
    assert twofactor.has_second_factor(user)
    assert BackupCodeDevice.objects.get(user=user).remaining() == 10
    # This session passed the code step; the other one is signed out.
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert signed_out(elsewhere)
    assert UserSession.objects.filter(user_id=user.pk).count() == 1
    event = actions("auth.2fa.enabled").get()
    assert event.actor == user
    assert [m.to for m in mail.outbox] == [[user.email]]
    assert mail.outbox[0].subject == "Two-factor authentication is on"
    # The codes are shown once: no later page shows them.
    for url in ("/", ACCOUNT, SETUP, "/customers/"):
        later = client.get(url)
        assert later.status_code == 200, url
        assert not any(code in text(later) for code in codes), url
    assert "10 backup codes left." in text(client.get(ACCOUNT))


def test_the_enrolment_code_cannot_be_used_again_to_sign_in(world, client, clock):
    user = world.users[Role.GUEST]
    work_in(client, user, world.a).get(SETUP)
    code = code_at(pending_device(user))
    assert client.post(SETUP, {"code": code}).status_code == 200
    assert twofactor.has_second_factor(user)

    other = Client()
    response = sign_in_with_code(other, user, code)

    assert response.status_code == 200
    assert WRONG_AT_SIGN_IN in text(response)


def test_a_code_typed_with_a_space_is_accepted_at_setup_as_at_sign_in(world, client, clock):
    user = world.users[Role.GUEST]
    work_in(client, user, world.a).get(SETUP)
    code = code_at(pending_device(user))

    response = client.post(SETUP, {"code": f"{code[:3]} {code[3:]}"})

    assert len(shown_backup_codes(response)) == 10


# --- Encryption at rest -------------------------------------------------------------------


def stored_key(device):
    table = connection.ops.quote_name(EncryptedTOTPDevice._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT encrypted_key FROM {table} WHERE id = %s", [device.pk])
        return cursor.fetchone()[0]


def test_the_secret_is_encrypted_at_rest(world, client):
    user = world.users[Role.GUEST]
    work_in(client, user, world.a).get(SETUP)
    device = pending_device(user)
    raw = device.bin_key
    stored = stored_key(device)

    assert len(raw) == 20
    b32 = base64.b32encode(raw).decode()
    for form in (
        raw.hex(),
        raw.hex().upper(),
        b32,
        b32.rstrip("="),
        b32.lower(),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        twofactor.secret_text(device),
    ):
        assert form not in stored
    assert raw not in stored.encode()
    assert not hasattr(device, "key")  # no plain-text key column beside it
    assert stored.startswith("gAAAAA")  # a Fernet token


def test_key_rotation_re_encrypts_the_secrets(world, clock):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    user = world.users[Role.GUEST]
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        device, _ = give_authenticator(user)
        raw = device.bin_key
    before = stored_key(device)

    # A new key in front: the old secret still decrypts and verifies.
    with override_settings(FIELD_ENCRYPTION_KEYS=[new, old]):
        assert device.verify_token(code_at(device))
        out = StringIO()
        call_command("rotate_encryption_keys", stdout=out)
    assert "Re-encrypted under the newest key: 1 authenticator secret(s)" in out.getvalue()

    after = stored_key(device)
    assert after != before
    assert Fernet(new.encode()).decrypt(after.encode()) == raw
    with pytest.raises(InvalidToken):
        Fernet(old.encode()).decrypt(after.encode())

    clock.shift(30)  # the next code (the last one was used)
    device = EncryptedTOTPDevice.objects.get(pk=device.pk)
    with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
        assert device.bin_key == raw
        assert device.verify_token(code_at(device))
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        with pytest.raises(DecryptionError):
            device.bin_key  # noqa: B018
        clock.shift(30)
        with pytest.raises(DecryptionError):
            device.verify_token("123456")


def test_rotation_stops_at_a_secret_no_key_decrypts(world):
    with override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        device, _ = give_authenticator(world.users[Role.GUEST])
    before = stored_key(device)
    with override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        with pytest.raises(Exception, match=f"Authenticator secret {device.pk}:"):
            call_command("rotate_encryption_keys", stdout=StringIO())
    assert stored_key(device) == before


# --- Signing in with an authenticator -----------------------------------------------------


def test_after_the_password_only_the_code_form_and_logout_are_open(world, client, clock):
    admin = world.users[Role.ADMIN]
    give_authenticator(admin)
    sign_in(client, admin)

    for url in ("/", "/customers/", "/settings/security/", "/audit/", ACCOUNT, SETUP, LOGIN):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"] == VERIFY, url
    for url in (BACKUP, REMOVE, "/switch-entity/", "/settings/security/", ACCOUNT):
        response = client.post(url, {"code": "123456", "entity": world.a.pk})
        assert response["Location"] == VERIFY, url
    assert BackupCodeDevice.objects.get(user=admin).remaining() == 10
    assert twofactor.has_second_factor(admin)

    page = client.get(VERIFY)
    assert page.status_code == 200
    assert "Enter your code" in text(page)
    assert client.post(LOGOUT)["Location"] == LOGIN
    assert signed_out(client)


def test_the_code_step_returns_to_the_page_first_asked_for(world, client, clock):
    user = world.users[Role.GUEST]
    device, _ = give_authenticator(user)
    anonymous_key = client.session.session_key

    sign_in(client, user)
    password_key = session_key(client)
    assert password_key != anonymous_key
    assert client.get("/customers/")["Location"] == VERIFY
    assert client.get("/")["Location"] == VERIFY  # the first page asked for is kept
    assert client.get(VERIFY).status_code == 200

    response = enter_code(client, code_at(device))

    assert response.status_code == 302
    assert response["Location"] == "/customers/"
    verified_key = session_key(client)
    assert verified_key != password_key
    assert not UserSession.objects.filter(session_key=password_key).exists()
    assert client.get("/customers/").status_code == 200
    assert client.get(VERIFY)["Location"] == "/"  # nothing left to verify
    event = actions("auth.2fa.verified").get()
    assert event.actor == user
    # The cookie of the password step alone does not carry the verification.
    stale = Client()
    stale.cookies["sessionid"] = password_key
    assert signed_out(stale)


def test_the_same_code_cannot_be_used_twice(world, clock):
    user = world.users[Role.GUEST]
    device, _ = give_authenticator(user)
    code = code_at(device)

    assert sign_in_with_code(Client(), user, code).status_code == 302
    again = sign_in_with_code(second := Client(), user, code)

    assert again.status_code == 200
    assert WRONG_AT_SIGN_IN in text(again)
    assert second.get("/")["Location"] == VERIFY
    assert actions("auth.2fa.verified").count() == 1
    assert actions("auth.2fa.failed").count() == 1
    clock.shift(30)  # the next code works
    assert enter_code(second, code_at(device)).status_code == 302


def test_the_code_step_accepts_a_code_typed_with_a_space(world, client, clock):
    user = world.users[Role.GUEST]
    device, _ = give_authenticator(user)
    code = code_at(device)

    assert sign_in_with_code(client, user, f" {code[:3]} {code[3:]} ")["Location"] == "/"


@pytest.mark.parametrize(
    "steps,accepted",
    [(-2, False), (-1, True), (0, True), (1, True), (2, False)],
    ids=["2-steps-ago", "1-step-ago", "now", "1-step-ahead", "2-steps-ahead"],
)
def test_the_tolerance_window_is_one_step(world, client, clock, steps, accepted):
    user = world.users[Role.GUEST]
    device, _ = give_authenticator(user)

    response = sign_in_with_code(client, user, code_at(device, steps))

    if accepted:
        assert response.status_code == 302 and response["Location"] == "/"
        assert client.get("/").status_code == 200
    else:
        assert response.status_code == 200
        assert WRONG_AT_SIGN_IN in text(response)
        assert client.get("/")["Location"] == VERIFY


def test_wrong_codes_slow_down_the_next_tries(world, client, clock):
    user = world.users[Role.GUEST]
    device, _ = give_authenticator(user)
    sign_in(client, user)
    wrong = wrong_code(device)

    first = enter_code(client, wrong)  # 12:00:05, 1 failure: the next check waits 1 s
    assert WRONG_AT_SIGN_IN in text(first)
    clock.shift(1)
    assert WRONG_AT_SIGN_IN in text(enter_code(client, wrong))  # 2 failures: 2 s
    clock.shift(2)
    assert WRONG_AT_SIGN_IN in text(enter_code(client, wrong))  # 3 failures: 4 s

    # The right code, right away, is refused until the wait is over.
    refused = enter_code(client, code_at(device))
    assert refused.status_code == 200
    assert "Too many wrong codes. Wait 4 seconds and try again." in text(refused)
    clock.shift(3)
    assert "Too many wrong codes. Wait 1 second and try again." in text(
        enter_code(client, code_at(device))
    )
    assert client.get("/")["Location"] == VERIFY

    clock.shift(1)
    assert enter_code(client, code_at(device)).status_code == 302
    assert client.get("/").status_code == 200
    assert actions("auth.2fa.failed", actor=user).count() == 5
    device.refresh_from_db()
    assert device.throttling_failure_count == 0


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: concurrent connections and row locks",
)
def test_the_same_code_sent_twice_at_once_signs_in_only_once(transactional_db, world, clock):
    user = world.users[Role.GUEST]
    device, _ = give_authenticator(user)
    code = code_at(device)
    clients = [Client(), Client()]
    for client in clients:
        sign_in(client, user)
    # Both requests reach the code check together (unless one waits on a row lock).
    barrier = threading.Barrier(2, timeout=3)
    real_verify = TOTP.verify

    def verify_together(self, *args, **kwargs):
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return real_verify(self, *args, **kwargs)

    statuses, errors = [], []

    def send(client):
        try:
            statuses.append(enter_code(client, code).status_code)
        except Exception as error:  # reported in the test's thread
            errors.append(error)
        finally:
            connection.close()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TOTP, "verify", verify_together)
        threads = [threading.Thread(target=send, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    assert sorted(statuses) == [200, 302]


# --- Backup codes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        lambda code: code,
        lambda code: code.upper(),
        lambda code: code.replace("-", ""),
        lambda code: f"  {code.upper().replace('-', '')} ",
    ],
    ids=["as-shown", "upper-case", "no-dash", "upper-no-dash-spaces"],
)
def test_a_backup_code_works_once(world, client, clock, typed, django_capture_on_commit_callbacks):
    user = world.users[Role.GUEST]
    _, codes = give_authenticator(user)

    with django_capture_on_commit_callbacks(execute=True):
        response = sign_in_with_code(client, user, typed(codes[3]))

    assert response.status_code == 302 and response["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert "You used a backup code; 9 remain." in text(page)
    assert BackupCodeDevice.objects.get(user=user).remaining() == 9
    event = actions("auth.2fa.backup_code_used").get()
    assert event.actor == user and event.data == {"remaining": 9}
    assert not actions("auth.2fa.verified").exists()
    assert [m.to for m in mail.outbox] == [[user.email]]
    assert mail.outbox[0].subject == "A backup code was used"
    assert "9 remain" in mail.outbox[0].body
    assert "9 backup codes left." in text(client.get(ACCOUNT))

    # Used: refused however it is typed, in a new sign-in.
    for variant in (codes[3], codes[3].upper().replace("-", "")):
        clock.shift(5)  # past the throttle of the previous failure
        again = sign_in_with_code(Client(), user, variant)
        assert again.status_code == 200
        assert WRONG_AT_SIGN_IN in text(again)
    assert BackupCodeDevice.objects.get(user=user).remaining() == 9
    assert actions("auth.2fa.backup_code_used").count() == 1


def test_new_backup_codes_void_the_old_ones(world, client, clock):
    user = world.users[Role.GUEST]
    device, old_codes = give_authenticator(user)
    work_in_verified(client, user, world.a, device)

    response = client.post(BACKUP)

    assert response.status_code == 200
    assert "Your new backup codes" in text(response)
    new_codes = shown_backup_codes(response)
    assert len(new_codes) == 10
    assert not set(new_codes) & set(old_codes)
    assert BackupCode.objects.filter(device__user=user).count() == 10
    assert actions("auth.2fa.backup_codes_regenerated", actor=user).exists()
    assert not any(code in text(client.get(ACCOUNT)) for code in new_codes)

    old = sign_in_with_code(Client(), user, old_codes[0])
    assert WRONG_AT_SIGN_IN in text(old)
    clock.shift(5)
    assert sign_in_with_code(Client(), user, new_codes[0]).status_code == 302


def test_only_hashes_of_backup_codes_are_stored(world):
    user = world.users[Role.GUEST]
    _, codes = give_authenticator(user)
    table = connection.ops.quote_name(BackupCode._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")
        rows = " ".join(str(row) for row in cursor.fetchall()).lower()

    hashes = list(BackupCode.objects.filter(device__user=user).values_list("code_hash", flat=True))
    assert len(hashes) == 10
    assert all(re.fullmatch(r"[0-9a-f]{40,64}", h) for h in hashes)  # keyed HMAC digests
    assert set(hashes) == {twofactor.backup_code_hash(code) for code in codes}
    for code in codes:
        assert code not in rows
        assert code.replace("-", "") not in rows


def test_new_backup_codes_need_a_finished_sign_in(world, client):
    user = world.users[Role.GUEST]
    _, codes = give_authenticator(user)
    work_in(client, user, world.a)  # password only

    assert client.post(BACKUP)["Location"] == VERIFY
    assert set(
        BackupCode.objects.filter(device__user=user).values_list("code_hash", flat=True)
    ) == {twofactor.backup_code_hash(code) for code in codes}


def test_new_backup_codes_keep_a_backup_code_sign_in(world, client, clock):
    user = world.users[Role.GUEST]
    _, codes = give_authenticator(user)
    assert sign_in_with_code(client, user, codes[0]).status_code == 302

    assert len(shown_backup_codes(client.post(BACKUP))) == 10

    response = client.get(ACCOUNT)
    assert response.status_code == 200, f"sent to {response.get('Location')}"


def test_a_backup_code_of_digits_only_works(world, client, clock, monkeypatch):
    user = world.users[Role.GUEST]
    give_authenticator(user)
    monkeypatch.setattr(twofactor, "BACKUP_ALPHABET", "23456789")
    codes = twofactor.regenerate_backup_codes(user, request=None)

    assert sign_in_with_code(client, user, codes[0]).status_code == 302


# --- When the policy requires 2FA ---------------------------------------------------------


@pytest.fixture
def required(world):
    SecurityPolicy.objects.create(entity=world.a, require_2fa=True)
    return world


def test_a_required_user_without_an_authenticator_must_enrol_first(required, client, clock):
    user = required.users[Role.GUEST]
    sign_in(client, user)

    for url in ("/customers/", "/", ACCOUNT, VERIFY, "/audit/", "/settings/security/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == SETUP, url
    for url in (BACKUP, REMOVE, ACCOUNT, "/switch-entity/"):
        assert client.post(url, {"phone": "912 34 567"})["Location"] == SETUP, url
    assert User.objects.get(pk=user.pk).phone == ""
    page = client.get("/", follow=True)
    assert page.redirect_chain == [(SETUP, 302)]
    assert SETUP_REQUIRED in text(page)
    assert "Log out instead" in text(page) and ">Cancel</a>" not in text(page)

    response = client.post(SETUP, {"code": code_at(pending_device(user))})

    assert len(shown_backup_codes(response)) == 10
    # "Continue" goes to the page first asked for.
    assert re.search(r'<a class="button" href="/customers/">Continue</a>', text(response))
    for url in ("/customers/", "/", ACCOUNT):
        assert client.get(url).status_code == 200, url
    assert actions("auth.2fa.enabled", actor=user).exists()


def test_the_next_sign_in_of_a_required_user_asks_for_the_code(required, client, clock):
    user = required.users[Role.GUEST]
    device, _ = give_authenticator(user)

    sign_in(client, user)

    assert client.get("/")["Location"] == VERIFY
    assert client.get(SETUP)["Location"] == VERIFY  # no new authenticator without the code
    assert enter_code(client, code_at(device))["Location"] == "/"


@pytest.mark.parametrize("who", ["outsider", "b_admin"])
def test_users_the_policy_does_not_reach_are_not_asked_to_enrol(required, client, who):
    user = getattr(required, who)
    sign_in(client, user)

    assert client.get("/").status_code == 200
    assert client.get(ACCOUNT).status_code == 200


def test_a_required_user_cannot_turn_it_off(
    required, client, clock, django_capture_on_commit_callbacks
):
    user = required.users[Role.GUEST]
    device, _ = give_authenticator(user)
    work_in_verified(client, user, required.a, device)
    assert "Your organisation requires it, so it cannot be turned off." in text(client.get(ACCOUNT))

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(REMOVE, {"code": code_at(device)}, follow=True)

    assert response.redirect_chain == [(ACCOUNT, 302)]
    assert (
        "Your organisation requires two-factor authentication, so it cannot be turned off."
        in text(response)
    )
    assert twofactor.has_second_factor(user)
    assert BackupCodeDevice.objects.filter(user=user).exists()
    assert not actions("auth.2fa.disabled").exists()
    assert mail.outbox == []


def test_a_user_not_required_can_turn_it_off_with_a_code(
    world, client, clock, django_capture_on_commit_callbacks
):
    user = world.users[Role.GUEST]
    device, _ = give_authenticator(user)
    work_in_verified(client, user, world.a, device)

    refused = client.post(REMOVE, {"code": wrong_code(device)}, follow=True)
    assert "That code is not right; two-factor authentication stays on." in text(refused)
    assert twofactor.has_second_factor(user)

    clock.shift(2)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(REMOVE, {"code": code_at(device)}, follow=True)

    assert response.redirect_chain == [(ACCOUNT, 302)]
    assert "Two-factor authentication is off." in text(response)
    assert not EncryptedTOTPDevice.objects.filter(user=user).exists()
    assert not BackupCodeDevice.objects.filter(user=user).exists()
    event = actions("auth.2fa.disabled").get()
    assert event.actor == user and event.target_id == str(user.pk)
    assert [m.subject for m in mail.outbox] == ["Two-factor authentication is off"]
    assert mail.outbox[0].to == [user.email]
    assert client.get("/").status_code == 200  # still signed in
    sign_in(other := Client(), user)
    assert other.get("/").status_code == 200  # no code asked any more


# --- Reset by an admin --------------------------------------------------------------------


def reset_url(user):
    return f"/settings/users/{user.pk}/reset-2fa/"


def test_an_admin_resets_2fa_with_a_reason(world, client, django_capture_on_commit_callbacks):
    admin, guest = world.users[Role.ADMIN], world.users[Role.GUEST]
    give_authenticator(guest)
    guest_session = work_in(Client(), guest, world.a)
    work_in(client, admin, world.a)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reset_url(guest), {"reason": "  Lost phone, ticket 4711 "}, follow=True
        )

    assert response.redirect_chain == [("/settings/users/", 302)]
    assert f"Two-factor authentication of {guest.email} was reset" in text(response)
    assert not EncryptedTOTPDevice.objects.filter(user=guest).exists()
    assert not BackupCodeDevice.objects.filter(user=guest).exists()
    assert not BackupCode.objects.filter(device__user=guest).exists()
    assert signed_out(guest_session)
    assert not UserSession.objects.filter(user_id=guest.pk).exists()
    event = actions("auth.2fa.reset").get()
    assert event.actor == admin
    assert event.target_id == str(guest.pk)
    assert event.entity == world.a
    assert event.data == {"reason": "Lost phone, ticket 4711"}
    assert [m.to for m in mail.outbox] == [[guest.email]]
    assert mail.outbox[0].subject == "Two-factor authentication is off"
    assert admin.email in mail.outbox[0].body
    assert client.get("/").status_code == 200  # the admin stays signed in


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_a_reset_without_a_reason_is_refused(
    world, client, reason, django_capture_on_commit_callbacks
):
    admin, guest = world.users[Role.ADMIN], world.users[Role.GUEST]
    give_authenticator(guest)
    guest_session = work_in(Client(), guest, world.a)
    work_in(client, admin, world.a)

    data = {} if reason is None else {"reason": reason}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reset_url(guest), data, follow=True)

    assert "Say why two-factor authentication is being reset." in text(response)
    assert twofactor.has_second_factor(guest)
    assert BackupCodeDevice.objects.get(user=guest).remaining() == 10
    assert not signed_out(guest_session)
    assert not actions("auth.2fa.reset").exists()
    assert mail.outbox == []


@pytest.mark.parametrize("admin", ["b_admin", "outsider"])
def test_an_admin_of_another_entity_gets_404(world, client, admin):
    guest = world.users[Role.GUEST]
    give_authenticator(guest)
    other = getattr(world, admin)
    entity = world.b if admin == "b_admin" else world.c
    work_in(client, other, entity)

    assert client.post(reset_url(guest), {"reason": "Lost phone"}).status_code == 404
    assert twofactor.has_second_factor(guest)
    assert not actions("auth.2fa.reset").exists()


def test_an_entity_admin_cannot_reset_the_2fa_of_someone_who_also_works_elsewhere(world, client):
    """The main admin reaches both entities of the access: an admin of one of them must not
    lower the protection of that account (nor of a user who is also a member elsewhere)."""
    admin = world.users[Role.ADMIN]
    both = make_user("both@acme.example")
    Membership.objects.create(user=both, entity=world.a, role=Role.GUEST)
    Membership.objects.create(user=both, entity=world.b, role=Role.GUEST)
    main_device, _ = give_authenticator(world.main_admin)
    give_authenticator(both)
    main_session = work_in_verified(Client(), world.main_admin, world.a, main_device)
    work_in(client, admin, world.a)

    page = text(client.get("/settings/users/"))
    assert "<td>Main admin</td>" in page and "<td>Guest</td>" in page  # their role here
    assert page.count("Reset 2FA") == 0  # neither row offers it
    assert page.count("only someone who administers all of them can act on this account") == 2
    for person in (world.main_admin, both):
        response = client.post(reset_url(person), {"reason": "Lost phone"}, follow=True)
        assert "also works in entities you do not administer" in text(response)
        assert twofactor.has_second_factor(person)
    assert not signed_out(main_session)
    assert not actions("auth.2fa.reset").exists()

    # The main admin administers every entity they reach, so they can.
    response = main_session.post(reset_url(both), {"reason": "Lost phone"}, follow=True)
    assert f"Two-factor authentication of {both.email} was reset" in text(response)


@pytest.mark.parametrize(
    "role", [Role.CREDIT_MANAGER, Role.COLLECTOR, Role.SALES, Role.SALES_ADMIN, Role.GUEST]
)
def test_staff_roles_cannot_reset_2fa(world, client, role):
    target = make_user("target@acme.example")
    Membership.objects.create(user=target, entity=world.a, role=Role.GUEST)
    give_authenticator(target)
    work_in(client, world.users[role], world.a)

    assert client.post(reset_url(target), {"reason": "Lost phone"}).status_code == 403
    assert twofactor.has_second_factor(target)
    assert not actions("auth.2fa.reset").exists()


# --- Settings -> Security -----------------------------------------------------------------


def test_an_entity_admin_requires_2fa(world, client):
    admin = world.users[Role.ADMIN]
    work_in(client, admin, world.a)
    page = client.get("/settings/security/")
    assert "Require two-factor authentication" in text(page)
    policy = page.context["form"].instance

    # Nobody of the entity has an authenticator yet: saving asks to confirm first.
    ask = client.post("/settings/security/", policy_data(policy, require_2fa=True))
    assert ask.status_code == 200
    without = users_in_scope(entity=world.a).count()  # its members and the main admin
    assert (
        f"{without} users without an authenticator app must set one up before they can go on "
        "working."
    ) in text(ask)
    assert not SecurityPolicy.objects.get(entity=world.a).require_2fa
    response = client.post(
        "/settings/security/", {**policy_data(policy, require_2fa=True), "confirmed": "yes"}
    )

    assert response.status_code == 302
    assert SecurityPolicy.objects.get(entity=world.a).require_2fa
    event = actions("security.settings.changed").get()
    assert event.actor == admin and event.entity == world.a
    assert event.data == {"level": "entity-level", "changes": {"require_2fa": [False, True]}}
    # The admin is a user of the entity too: their own next page is the enrolment.
    after = client.get(response["Location"], follow=True)
    assert after.redirect_chain == [(SETUP, 302)]
    assert "Saved the entity-level policy. Two-factor authentication required: on." in text(after)
    assert SETUP_REQUIRED in text(after)


def test_an_entity_cannot_drop_2fa_the_multi_level_policy_requires(world, client):
    SecurityPolicy.objects.create(group=world.group, require_2fa=True)
    policy = SecurityPolicy.objects.create(entity=world.a, require_2fa=True)
    admin = world.users[Role.ADMIN]
    device, _ = give_authenticator(admin)
    work_in_verified(client, admin, world.a, device)

    response = client.post("/settings/security/", policy_data(policy, require_2fa=False))

    assert response.status_code == 200
    assert "The multi-level policy requires two-factor authentication." in text(response)
    assert SecurityPolicy.objects.get(pk=policy.pk).require_2fa
    assert not actions("security.settings.changed").exists()


# --- Phone number -------------------------------------------------------------------------


def test_a_norwegian_mobile_number_is_saved_in_e164(world, client):
    user = world.users[Role.GUEST]
    work_in(client, user, world.a)

    response = client.post(ACCOUNT, {"phone": "912 34 567"}, follow=True)

    assert response.redirect_chain == [(ACCOUNT, 302)]
    assert "Your mobile phone number was saved." in text(response)
    assert User.objects.get(pk=user.pk).phone == "+4791234567"
    masked = mask_phone("+4791234567")
    assert masked.startswith("+47") and masked.endswith("67") and "\N{BULLET}" in masked
    assert f"On file: {masked}." in text(response)
    event = actions("account.phone.changed").get()
    assert event.actor == user
    assert event.data == {"old": "", "new": masked}

    client.post(ACCOUNT, {"phone": "+47 987 65 432"})
    second = actions("account.phone.changed").order_by("-id").first()
    assert second.data == {"old": masked, "new": mask_phone("+4798765432")}
    logged = json.dumps([e.data for e in actions("account.phone.changed")], ensure_ascii=False)
    for secret in ("91234567", "912 34 567", "98765432", "987 65 432"):
        assert secret not in logged


def test_a_phone_number_that_is_not_one_is_refused(world, client):
    user = world.users[Role.GUEST]
    work_in(client, user, world.a)

    response = client.post(ACCOUNT, {"phone": "abc"})

    assert response.status_code == 200
    assert "Enter a phone number such as +47 912 34 567." in text(response)
    assert User.objects.get(pk=user.pk).phone == ""
    assert not actions("account.phone.changed").exists()
