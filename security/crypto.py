"""Encryption at rest for small secrets (TOTP keys, customer secrets), with key rotation.

Keys come from FIELD_ENCRYPTION_KEYS (Fernet keys, newest first). MultiFernet encrypts
with the newest and decrypts with any, so a new key can be added in front, everything
re-encrypted (`manage.py rotate_encryption_keys`), and the old key dropped. In
development, with no keys set, one key is derived from SECRET_KEY.
"""

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.crypto import salted_hmac


class DecryptionError(Exception):
    """Stored data cannot be decrypted with any configured key."""


def _development_key():
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"field-encryption"
    ).derive(settings.SECRET_KEY.encode())
    return base64.urlsafe_b64encode(derived)


@functools.cache
def _multifernet(keys):
    fernets = []
    for number, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except ValueError:
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS entry {number} is not a Fernet key "
                "(32 url-safe base64-encoded bytes)."
            ) from None
    return MultiFernet(fernets)


def fernet():
    keys = tuple(settings.FIELD_ENCRYPTION_KEYS) or (_development_key(),)
    return _multifernet(keys)


def encrypt(data: bytes) -> str:
    return fernet().encrypt(data).decode("ascii")


def decrypt(token: str) -> bytes:
    try:
        return fernet().decrypt(token.encode("ascii"))
    except InvalidToken:
        raise DecryptionError(
            "Stored data cannot be decrypted: is its key missing from FIELD_ENCRYPTION_KEYS?"
        ) from None


def rotate(token: str) -> str:
    """The same data encrypted under the newest key."""
    try:
        return fernet().rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken:
        raise DecryptionError("Stored data cannot be decrypted with any configured key.") from None


# One-time backup codes are stored as keyed hashes (security.models.BackupCodeDevice).
def normalize_code(token):
    return "".join(ch for ch in str(token).lower() if ch.isalnum())


def backup_code_hash(token):
    return salted_hmac(
        "security.backup-code", normalize_code(token), algorithm="sha256"
    ).hexdigest()
