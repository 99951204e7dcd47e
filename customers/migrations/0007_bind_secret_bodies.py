"""Secret bodies become AES-GCM values bound to their row and entity (security.crypto):
each legacy Fernet token is decrypted and encrypted again with `customers_secret.
encrypted_body:<id>:<entity id>` as associated data, so a body copied into another row no
longer decrypts. The code after this migration reads only bound values."""

from django.db import migrations

from security.encryption_migrations import convert


def bind(apps, schema_editor):
    convert(apps.get_model("customers", "Secret"), "encrypted_body", "entity_id", bind=True)


def unbind(apps, schema_editor):
    convert(apps.get_model("customers", "Secret"), "encrypted_body", "entity_id", bind=False)


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0006_link_grant"),
    ]

    operations = [
        migrations.RunPython(bind, unbind, elidable=False),
    ]
