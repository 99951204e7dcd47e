"""The data migrations bind the values written before binding existed: a database holding
Fernet tokens (a secret's body, an authenticator key) migrates to the new head with each
value converted and readable where it belongs, and no longer readable when copied to
another row; a token no configured key decrypts stops the migration with its row named
and nothing changed; and reversing the migrations gives Fernet tokens back."""

import os

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings

from customers.models import Secret
from security.crypto import DecryptionError, is_bound, is_legacy
from security.models import EncryptedTOTPDevice

BEFORE = [("customers", "0006_link_grant"), ("security", "0007_securitynotice")]
KEY = Fernet.generate_key().decode()
BODY = "Konto 1234.56.78903, PIN 8264"


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _heads():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def _legacy(data):
    return Fernet(KEY.encode()).encrypt(data).decode()


def _old_rows(old, number):
    """An entity, a customer with a secret and a user with an authenticator, as the code
    before binding stored them (Fernet tokens)."""
    entity = old.get_model("accounts", "Entity").objects.create(
        name=f"Old {number} AS", slug=f"old-{number}"
    )
    customer = old.get_model("customers", "Customer").objects.create(
        entity=entity, number=f"K-{number}", name="Kunde AS"
    )
    secret = old.get_model("customers", "Secret").objects.create(
        entity=entity, customer=customer, title="Plan", encrypted_body=_legacy(BODY.encode())
    )
    user = old.get_model("accounts", "User").objects.create(
        email=f"old{number}@example.com", password="!"
    )
    raw = os.urandom(20)
    device = old.get_model("security", "EncryptedTOTPDevice").objects.create(
        user=user, name="Authenticator app", confirmed=True, encrypted_key=_legacy(raw)
    )
    return secret.pk, device.pk, raw


def _stored(model, pk, column):
    return model._base_manager.values_list(column, flat=True).get(pk=pk)


@pytest.mark.django_db(transaction=True)
def test_legacy_values_are_bound_by_the_migrations_and_unbound_when_reversed():
    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY]):
        old = _migrate(BEFORE)
        first_secret, first_device, first_raw = _old_rows(old, 1)
        second_secret, second_device, _ = _old_rows(old, 2)

        _migrate(_heads())

        for pk in (first_secret, second_secret):
            assert is_bound(_stored(Secret, pk, "encrypted_body"))
            assert Secret._base_manager.get(pk=pk).body == BODY
        for pk in (first_device, second_device):
            assert is_bound(_stored(EncryptedTOTPDevice, pk, "encrypted_key"))
        assert EncryptedTOTPDevice.objects.get(pk=first_device).bin_key == first_raw

        # Bound now: a converted value copied to another row no longer decrypts there.
        copied = _stored(Secret, first_secret, "encrypted_body")
        Secret._base_manager.filter(pk=second_secret).update(encrypted_body=copied)
        with pytest.raises(DecryptionError):
            Secret._base_manager.get(pk=second_secret).body  # noqa: B018
        key = _stored(EncryptedTOTPDevice, first_device, "encrypted_key")
        EncryptedTOTPDevice.objects.filter(pk=second_device).update(encrypted_key=key)
        with pytest.raises(DecryptionError):
            EncryptedTOTPDevice.objects.get(pk=second_device).bin_key  # noqa: B018
        Secret._base_manager.filter(pk=second_secret).delete()
        EncryptedTOTPDevice.objects.filter(pk=second_device).delete()

        # Reversed: the code before binding reads Fernet tokens again.
        _migrate(BEFORE)
        body = _stored(Secret, first_secret, "encrypted_body")
        assert is_legacy(body)
        assert Fernet(KEY.encode()).decrypt(body.encode()).decode() == BODY
        token = _stored(EncryptedTOTPDevice, first_device, "encrypted_key")
        assert Fernet(KEY.encode()).decrypt(token.encode()) == first_raw

        _migrate(_heads())
        assert Secret._base_manager.get(pk=first_secret).body == BODY


@pytest.mark.django_db(transaction=True)
def test_a_value_no_key_decrypts_stops_the_migration_with_its_row_named():
    with override_settings(FIELD_ENCRYPTION_KEYS=[KEY]):
        old = _migrate(BEFORE)
        secret_pk, _, _ = _old_rows(old, 1)
        stray = Fernet(Fernet.generate_key()).encrypt(b"lost key").decode()
        old.get_model("customers", "Secret")._base_manager.filter(pk=secret_pk).update(
            encrypted_body=stray
        )

        with pytest.raises(RuntimeError, match=rf"customers_secret.encrypted_body: .*{secret_pk}"):
            _migrate(_heads())
        assert _stored(Secret, secret_pk, "encrypted_body") == stray  # nothing changed

        # Once the row is dealt with (here: deleted), the migration completes.
        Secret._base_manager.filter(pk=secret_pk).delete()
        _migrate(_heads())
    assert not MigrationExecutor(connection).migration_plan(_heads())
