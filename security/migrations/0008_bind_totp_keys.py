"""Authenticator keys become AES-GCM values bound to their device row and user
(security.crypto): each legacy Fernet token is decrypted and encrypted again with
`security_encryptedtotpdevice.encrypted_key:<id>:<user id>` as associated data, so a key
copied into another device no longer decrypts. The code after this migration reads only
bound values."""

from django.db import migrations

from security.encryption_migrations import convert


def bind(apps, schema_editor):
    convert(
        apps.get_model("security", "EncryptedTOTPDevice"), "encrypted_key", "user_id", bind=True
    )


def unbind(apps, schema_editor):
    convert(
        apps.get_model("security", "EncryptedTOTPDevice"), "encrypted_key", "user_id", bind=False
    )


class Migration(migrations.Migration):
    dependencies = [
        ("security", "0007_securitynotice"),
    ]

    operations = [
        migrations.RunPython(bind, unbind, elidable=False),
    ]
