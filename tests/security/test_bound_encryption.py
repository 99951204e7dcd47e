"""Values encrypted at rest are bound to where they belong (security.crypto): a value
decrypts only in its own table, column, row and owner; a changed byte, another key or an
unbound (legacy Fernet) value is refused with DecryptionError; rotation re-encrypts under
the newest key, still bound; and legacy Fernet values convert to bound ones."""

import base64
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.test import override_settings

from accounts.roles import Role
from accounts.tenancy import system_code
from customers.models import Customer, Secret
from security.crypto import (
    Binding,
    DecryptionError,
    bind_legacy,
    decrypt,
    encrypt,
    is_bound,
    rotate,
)
from security.models import EncryptedTOTPDevice

HERE = Binding("customers_secret", "encrypted_body", 41, 7)
DATA = b"Konto 1234.56.78903, PIN 8264"


def new_key():
    return Fernet.generate_key().decode()


def flip(value, index):
    """`value` with one byte of its payload changed (the format stays well formed)."""
    head, payload = value.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[index] ^= 0x01
    return f"{head}:{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')}"


def test_a_value_decrypts_where_it_was_bound():
    value = encrypt(DATA, HERE)

    assert decrypt(value, HERE) == DATA
    assert is_bound(value) and value.startswith("gcm1:")
    assert DATA.decode() not in value and "8264" not in value
    # A random nonce: the same data twice are two different values.
    assert encrypt(DATA, HERE) != value


@pytest.mark.parametrize(
    "elsewhere",
    [
        Binding("customers_secret", "encrypted_body", 42, 7),  # another row
        Binding("customers_secret", "encrypted_body", 41, 8),  # the same id, another entity
        Binding("customers_secret", "title", 41, 7),  # another column
        Binding("security_encryptedtotpdevice", "encrypted_body", 41, 7),  # another table
    ],
)
def test_a_value_copied_elsewhere_does_not_decrypt(elsewhere):
    value = encrypt(DATA, HERE)

    with pytest.raises(DecryptionError) as refused:
        decrypt(value, elsewhere)
    assert refused.value.reason == "changed, or copied from another row"
    assert refused.value.binding == elsewhere
    assert value not in str(refused.value)  # the message never carries the value


def test_a_changed_byte_does_not_decrypt():
    value = encrypt(DATA, HERE)
    length = len(base64.urlsafe_b64decode(value.rsplit(":", 1)[1] + "=="))

    for index in (0, 11, 12, len(DATA) + 11, length - 1):  # nonce, ciphertext, tag
        with pytest.raises(DecryptionError):
            decrypt(flip(value, index), HERE)
    for broken in (value[:-1], value[:20], value + "A", "", "gcm1::", "gcm1:x:y", "plain"):
        with pytest.raises(DecryptionError):
            decrypt(broken, HERE)


def test_a_value_under_a_key_no_longer_configured_does_not_decrypt():
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key()]):
        value = encrypt(DATA, HERE)
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key()]):
        with pytest.raises(DecryptionError) as refused:
            decrypt(value, HERE)
    assert "key not in FIELD_ENCRYPTION_KEYS" in refused.value.reason


def test_a_changed_key_id_does_not_decrypt():
    old, new = new_key(), new_key()
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        value = encrypt(DATA, HERE)
    with override_settings(FIELD_ENCRYPTION_KEYS=[new, old]):
        new_id = encrypt(DATA, HERE).split(":")[1]
        relabelled = ":".join([value.split(":")[0], new_id, value.split(":")[2]])
        with pytest.raises(DecryptionError):
            decrypt(relabelled, HERE)
        assert decrypt(value, HERE) == DATA


def test_the_newest_key_encrypts_and_every_key_decrypts_until_rotated():
    old, new = new_key(), new_key()
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        value = encrypt(DATA, HERE)
        old_id = value.split(":")[1]
    with override_settings(FIELD_ENCRYPTION_KEYS=[new, old]):
        assert decrypt(value, HERE) == DATA
        rotated = rotate(value, HERE)
        assert rotated.split(":")[1] != old_id
        assert decrypt(rotated, HERE) == DATA
        with pytest.raises(DecryptionError):
            rotate(value, Binding("customers_secret", "encrypted_body", 42, 7))
    with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
        assert decrypt(rotated, HERE) == DATA  # the old key can go
        with pytest.raises(DecryptionError):
            decrypt(value, HERE)
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        with pytest.raises(DecryptionError):
            decrypt(rotated, HERE)


def test_a_legacy_fernet_value_is_refused_but_converts():
    key = new_key()
    with override_settings(FIELD_ENCRYPTION_KEYS=[key]):
        legacy = Fernet(key.encode()).encrypt(DATA).decode()
        with pytest.raises(DecryptionError) as refused:
            decrypt(legacy, HERE)
        assert "unbound" in refused.value.reason

        bound = bind_legacy(legacy, HERE)
        assert is_bound(bound) and decrypt(bound, HERE) == DATA
        assert decrypt(rotate(legacy, HERE), HERE) == DATA
        with pytest.raises(DecryptionError):
            decrypt(bound, Binding("customers_secret", "encrypted_body", 42, 7))
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key()]):
        with pytest.raises(DecryptionError):
            bind_legacy(legacy, HERE)


def test_a_value_cannot_be_bound_to_a_row_not_yet_saved():
    with pytest.raises(ValueError, match="save the row"):
        encrypt(DATA, Binding("customers_secret", "encrypted_body", None, 7))


# --- The models and the rotation command -----------------------------------------------------


def stored(model, pk, column):
    return model._base_manager.values_list(column, flat=True).get(pk=pk)


def put(model, pk, **values):
    model._base_manager.filter(pk=pk).update(**values)


def test_new_rows_are_stored_bound_to_their_id_and_owner(world):
    with system_code():
        customer = Customer.objects.create(entity=world.a, number="B-1", name="Bundet AS")
        secret = Secret(entity=world.a, customer=customer, title="Bound")
        secret.set_body("Bundet")
        secret.save()
        created = Secret.objects.create(
            entity=world.a, customer=customer, title="Created", body="Laget"
        )
    device = EncryptedTOTPDevice.objects.create(
        user=world.users[Role.GUEST], name="App", bin_key=b"k" * 20
    )

    body = stored(Secret, secret.pk, "encrypted_body")
    assert is_bound(body) and "Bundet" not in body
    assert decrypt(body, Binding("customers_secret", "encrypted_body", secret.pk, world.a.pk))
    with system_code():
        assert Secret.objects.get(pk=secret.pk).body == "Bundet"
        assert Secret.objects.get(pk=created.pk).body == "Laget"
    key = stored(EncryptedTOTPDevice, device.pk, "encrypted_key")
    assert is_bound(key)
    assert EncryptedTOTPDevice.objects.get(pk=device.pk).bin_key == b"k" * 20
    binding = Binding("security_encryptedtotpdevice", "encrypted_key", device.pk, device.user_id)
    assert decrypt(key, binding) == b"k" * 20


def test_rotation_re_encrypts_every_value_bound_and_converts_legacy_ones(world):
    old, new = new_key(), new_key()
    user = world.users[Role.GUEST]
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        with system_code():
            customer = Customer.objects.create(entity=world.a, number="R-1", name="Rot AS")
            secret = Secret.objects.create(
                entity=world.a, customer=customer, title="Rotated", body="Roteres"
            )
            legacy = Secret.objects.create(
                entity=world.a, customer=customer, title="Legacy", body="x"
            )
        device = EncryptedTOTPDevice.objects.create(user=user, name="App", bin_key=b"r" * 20)
        # A value written as before binding existed (a Fernet token).
        put(Secret, legacy.pk, encrypted_body=Fernet(old.encode()).encrypt(b"Gammel").decode())
    before = stored(Secret, secret.pk, "encrypted_body")

    with override_settings(FIELD_ENCRYPTION_KEYS=[new, old]):
        out = StringIO()
        call_command("rotate_encryption_keys", stdout=out)
    assert "Re-encrypted under the newest key: 1 authenticator secret(s), 2 customer" in (
        out.getvalue()
    )
    assert "1 of them were in the old format" in out.getvalue()

    after = stored(Secret, secret.pk, "encrypted_body")
    assert after != before and is_bound(stored(Secret, legacy.pk, "encrypted_body"))
    with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
        with system_code():
            assert Secret.objects.get(pk=secret.pk).body == "Roteres"
            assert Secret.objects.get(pk=legacy.pk).body == "Gammel"
        assert EncryptedTOTPDevice.objects.get(pk=device.pk).bin_key == b"r" * 20
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        with system_code(), pytest.raises(DecryptionError):
            Secret.objects.get(pk=secret.pk).body  # noqa: B018


def test_rotation_keeps_a_copied_value_unreadable(world):
    """Rotation reads each value where it is: one copied from another row stops it."""
    with system_code():
        customer = Customer.objects.create(entity=world.a, number="R-2", name="Kopi AS")
        first = Secret.objects.create(entity=world.a, customer=customer, title="A", body="a")
        second = Secret.objects.create(entity=world.a, customer=customer, title="B", body="b")
    copied = stored(Secret, first.pk, "encrypted_body")
    put(Secret, second.pk, encrypted_body=copied)

    with pytest.raises(Exception, match=f"Customer secret {second.pk}: .*copied"):
        call_command("rotate_encryption_keys", stdout=StringIO())
    assert stored(Secret, second.pk, "encrypted_body") == copied
