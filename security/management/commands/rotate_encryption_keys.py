from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from security.crypto import DecryptionError, rotate
from security.models import EncryptedTOTPDevice


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret stored at rest under the newest key of "
        "FIELD_ENCRYPTION_KEYS, so older keys can then be removed."
    )

    def handle(self, *args, **options):
        done = 0
        with transaction.atomic():
            for device in EncryptedTOTPDevice.objects.select_for_update().iterator():
                try:
                    device.encrypted_key = rotate(device.encrypted_key)
                except DecryptionError as exc:
                    raise CommandError(f"Authenticator {device.pk}: {exc}") from None
                device.save(update_fields=["encrypted_key"])
                done += 1
        self.stdout.write(f"Re-encrypted {done} authenticator secret(s) under the newest key.")
