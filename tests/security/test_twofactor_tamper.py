"""An authenticator's stored key is bound to its device row and user: a key copied from
another device (one whose codes the attacker knows), a changed byte or a key under a
removed encryption key lets nobody in. The code step answers 200 with a plain message
(backup codes still work), never a 500; the failure is in the audit log; and the setup
page replaces an unreadable pending key instead of failing."""

import os
import re

import pytest
from cryptography.fernet import Fernet
from django.test import Client, override_settings

from accounts.roles import Role
from security import twofactor
from security.models import EncryptedTOTPDevice
from tests.conftest import work_in
from tests.helpers import (
    ACCOUNT,
    REMOVE,
    SETUP,
    VERIFY,
    actions,
    code_at,
    enter_code,
    pending_device,
    sign_in,
    text,
)

UNREADABLE = "Your authenticator app cannot be checked: its key cannot be read"


def enrolled(user):
    """An enrolled authenticator (its key bound to its row) and fresh backup codes."""
    device = EncryptedTOTPDevice.objects.create(
        user=user, name="Authenticator app", confirmed=True, bin_key=os.urandom(20)
    )
    return device, twofactor.regenerate_backup_codes(user, request=None)


def stored_key(device):
    return EncryptedTOTPDevice.objects.values_list("encrypted_key", flat=True).get(pk=device.pk)


def put_key(device, value):
    EncryptedTOTPDevice.objects.filter(pk=device.pk).update(encrypted_key=value)


def assert_kept_out(client, response, device):
    assert response.status_code == 200
    assert UNREADABLE in text(response)
    assert client.get("/customers/")["Location"] == VERIFY  # still at the code step
    assert not actions("auth.2fa.verified").exists()
    event = actions("security.decryption_failed").get()
    assert (event.data["table"], event.data["column"], event.data["row"]) == (
        "security_encryptedtotpdevice",
        "encrypted_key",
        device.pk,
    )
    assert stored_key(device) not in str(event.data)
    return event


def test_a_key_copied_from_another_device_lets_nobody_in(world, client, clock):
    victim = world.users[Role.GUEST]
    device, _ = enrolled(victim)
    # The attacker's own authenticator: they know its codes.
    own, _ = enrolled(world.users[Role.SALES])
    put_key(device, stored_key(own))

    sign_in(client, victim)
    response = enter_code(client, code_at(own))

    event = assert_kept_out(client, response, device)
    assert "copied" in event.data["reason"]
    assert event.actor == victim
    # The victim's session is still unverified from any other page.
    assert client.get(ACCOUNT)["Location"] == VERIFY


def test_a_changed_byte_lets_nobody_in_and_backup_codes_still_work(world, client, clock):
    user = world.users[Role.GUEST]
    device, codes = enrolled(user)
    right = code_at(device)
    value = stored_key(device)
    put_key(device, value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1])

    sign_in(client, user)
    response = enter_code(client, right)

    assert_kept_out(client, response, device)
    # The way in that does not need the key: a backup code.
    assert enter_code(client, codes[0]).status_code == 302
    assert client.get("/customers/").status_code == 200


def test_a_key_under_an_encryption_key_no_longer_configured_lets_nobody_in(world, client, clock):
    user = world.users[Role.GUEST]
    device, _ = enrolled(user)
    right = code_at(device)

    with override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        sign_in(client, user)
        response = enter_code(client, right)
        event = assert_kept_out(client, response, device)
    assert "key not in FIELD_ENCRYPTION_KEYS" in event.data["reason"]


def test_turning_2fa_off_with_an_unreadable_key_keeps_it_on(world, client, clock):
    user = world.users[Role.GUEST]
    device, codes = enrolled(user)
    right = code_at(device)
    put_key(device, stored_key(enrolled(world.users[Role.SALES])[0]))
    session = Client()
    sign_in(session, user)
    # Past the code step with a backup code, then a (now unreadable) authenticator code.
    assert enter_code(session, codes[0]).status_code == 302

    response = session.post(REMOVE, {"code": right}, follow=True)

    assert response.status_code == 200
    assert "two-factor authentication stays on" in text(response)
    assert twofactor.has_second_factor(user)
    assert actions("security.decryption_failed").count() == 1


def test_the_setup_page_replaces_an_unreadable_pending_key(world, client):
    user = world.users[Role.GUEST]
    work_in(client, user, world.a).get(SETUP)
    pending = pending_device(user)
    other = EncryptedTOTPDevice.objects.create(
        user=world.users[Role.SALES], name="App", confirmed=False, bin_key=os.urandom(20)
    )
    put_key(pending, stored_key(other))

    response = client.get(SETUP)

    assert response.status_code == 200
    shown = re.search(r'data-testid="totp-secret">([^<]+)<', text(response)).group(1)
    fresh = pending_device(user)
    assert fresh.pk != pending.pk
    assert twofactor.secret_text(fresh) == shown
    assert actions("security.decryption_failed").get().data["row"] == pending.pk


@pytest.mark.parametrize("tamper", ["copy", "byte"])
def test_no_tampering_reaches_a_server_error(world, clock, tamper):
    user = world.users[Role.GUEST]
    device, _ = enrolled(user)
    right = code_at(device)
    value = stored_key(device)
    codes = [right, "000000", "12345678"]
    if tamper == "copy":
        own, _ = enrolled(world.users[Role.SALES])
        put_key(device, stored_key(own))
        codes.insert(0, code_at(own))  # the code the copied key makes, before throttling
    else:
        put_key(device, value[:10] + ("x" if value[10] != "x" else "y") + value[11:])
    client = Client(raise_request_exception=False)
    sign_in(client, user)

    for code in codes:
        assert client.post(VERIFY, {"code": code}).status_code == 200
    assert client.get("/customers/")["Location"] == VERIFY
