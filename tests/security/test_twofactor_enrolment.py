"""Setting up two-factor authentication: the setup page (an inline QR code and the key),
wrong and throttled codes, the valid code that turns it on (backup codes shown once,
the other sessions ended, a notice sent), and the authenticator secret encrypted at
rest and re-encrypted by key rotation."""

import base64
import re
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django_otp import DEVICE_ID_SESSION_KEY

from accounts.models import UserSession
from accounts.roles import Role
from security import twofactor
from security.crypto import DecryptionError, decrypt
from security.models import (
    BackupCode,
    BackupCodeDevice,
    EncryptedTOTPDevice,
)
from tests.conftest import work_in
from tests.helpers import (
    ACCOUNT,
    BACKUP_CODE_RE,
    SETUP,
    WRONG_AT_SETUP,
    WRONG_AT_SIGN_IN,
    actions,
    code_at,
    give_authenticator,
    pending_device,
    shown_backup_codes,
    sign_in_with_code,
    signed_out,
    text,
    wrong_code,
)

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
    assert stored.startswith("gcm1:")  # AES-GCM bound to its row (security.crypto)


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
    with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
        assert decrypt(after, device.binding()) == raw
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]), pytest.raises(DecryptionError):
        decrypt(after, device.binding())

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
