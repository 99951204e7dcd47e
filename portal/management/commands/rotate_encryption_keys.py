from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.tenancy import system_code
from customers.models import Secret
from security.crypto import DecryptionError, rotate
from security.models import EncryptedTOTPDevice

# Every (model, field) holding data encrypted with security.crypto.
ENCRYPTED_FIELDS = [
    (EncryptedTOTPDevice, "encrypted_key", "authenticator secret"),
    (Secret, "encrypted_body", "customer secret"),
]


class Command(BaseCommand):
    help = (
        "Re-encrypt everything stored encrypted at rest under the newest key of "
        "FIELD_ENCRYPTION_KEYS, so older keys can then be removed. All or nothing."
    )

    def handle(self, *args, **options):
        counts = {}
        with system_code(), transaction.atomic():
            for model, field, label in ENCRYPTED_FIELDS:
                counts[label] = 0
                for row in model.objects.select_for_update().order_by("pk").iterator():
                    try:
                        setattr(row, field, rotate(getattr(row, field)))
                    except DecryptionError as exc:
                        raise CommandError(f"{label.capitalize()} {row.pk}: {exc}") from None
                    row.save(update_fields=[field])
                    counts[label] += 1
        summary = ", ".join(f"{count} {label}(s)" for label, count in counts.items())
        self.stdout.write(f"Re-encrypted under the newest key: {summary}.")
