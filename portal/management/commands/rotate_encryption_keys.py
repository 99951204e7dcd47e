from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.tenancy import system_code
from customers.models import Secret
from security.crypto import DecryptionError, is_legacy, rotate
from security.models import EncryptedTOTPDevice

# Every (model, field) holding data encrypted with security.crypto; each model's
# `binding()` says where a row's value belongs.
ENCRYPTED_FIELDS = [
    (EncryptedTOTPDevice, "encrypted_key", "authenticator secret"),
    (Secret, "encrypted_body", "customer secret"),
]


class Command(BaseCommand):
    help = (
        "Re-encrypt everything stored encrypted at rest under the newest key of "
        "FIELD_ENCRYPTION_KEYS, each value still bound to its row, so older keys can then "
        "be removed; values in the old unbound (Fernet) format are converted. All or nothing."
    )

    def handle(self, *args, **options):
        counts = {}
        converted = 0
        with system_code(), transaction.atomic():
            for model, field, label in ENCRYPTED_FIELDS:
                counts[label] = 0
                for row in model.objects.select_for_update().order_by("pk").iterator():
                    value = getattr(row, field)
                    try:
                        setattr(row, field, rotate(value, row.binding()))
                    except DecryptionError as exc:
                        raise CommandError(f"{label.capitalize()} {row.pk}: {exc}") from None
                    row.save(update_fields=[field])
                    counts[label] += 1
                    converted += is_legacy(value)
        summary = ", ".join(f"{count} {label}(s)" for label, count in counts.items())
        self.stdout.write(f"Re-encrypted under the newest key: {summary}.")
        if converted:
            self.stdout.write(
                f"{converted} of them were in the old format, not bound to their rows, and "
                "are now bound. The data migrations convert every value, so old-format "
                "values appearing since were written to the database directly: check how."
            )
