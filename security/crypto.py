"""Encryption at rest for small secrets (TOTP keys, customer secrets), bound to where each
value belongs, with key rotation.

A value is AES-256-GCM with a random 96-bit nonce, and the place it belongs to -- table,
column, row id and owner (`customers_secret.encrypted_body:42:7`, a `Binding`) -- is its
associated data. A value copied into another row, column or tenant fails to decrypt there,
as does a value with any byte changed: `DecryptionError`, never someone else's plaintext.

Stored as `gcm1:<key id>:<base64url(nonce + ciphertext + tag)>`. The keys come from
FIELD_ENCRYPTION_KEYS (Fernet-format keys, newest first; in development, with none set,
one is derived from SECRET_KEY); each gives an AES key and a key id by HKDF, so the id
says which key made a value and nothing about the key. The newest key encrypts, any
configured key decrypts its own values; `rotate` (`manage.py rotate_encryption_keys`)
re-encrypts under the newest, after which older keys can be dropped.

Values written before binding existed are Fernet tokens, which decrypt in any row. The
data migrations (customers 0007, security 0008) and `rotate` convert them with
`bind_legacy`; `decrypt` refuses them, so a Fernet token put into a row is not read.
"""

import base64
import binascii
import dataclasses
import functools
import os

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils.crypto import constant_time_compare, salted_hmac

FORMAT = "gcm1"
NONCE_BYTES = 12
TAG_BYTES = 16
AES_INFO = b"guardrail field encryption: aes-256-gcm key"
KEY_ID_INFO = b"guardrail field encryption: key id"


class DecryptionError(Exception):
    """A stored value cannot be decrypted where it is: wrong place, changed bytes, a key
    no longer configured, or not a bound value at all. `reason` says which, in words
    safe for the audit log (never the value itself)."""

    def __init__(self, reason, binding=None):
        super().__init__(f"Stored data cannot be decrypted: {reason}.")
        self.reason = reason
        self.binding = binding


@dataclasses.dataclass(frozen=True)
class Binding:
    """Where a value belongs: its table, column, row id and owner (entity or user id)."""

    table: str
    column: str
    row: int
    owner: int

    @classmethod
    def of(cls, instance, column, owner):
        """The binding of `instance`'s `column` (a model or historical model row)."""
        return cls(instance._meta.db_table, column, instance.pk, owner)

    def __str__(self):
        return f"{self.table}.{self.column}:{self.row}:{self.owner}"

    def audit_data(self):
        return {"table": self.table, "column": self.column, "row": self.row}


def _development_key(secret_key):
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"field-encryption"
    ).derive(secret_key.encode())
    return base64.urlsafe_b64encode(derived)


def _configured_keys():
    # In development the keys are derived from SECRET_KEY, then from each fallback key, so
    # rotating the secret key leaves the data readable (rotate_encryption_keys moves it).
    secret_keys = (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)
    return tuple(settings.FIELD_ENCRYPTION_KEYS) or tuple(map(_development_key, secret_keys))


def _key_bytes(number, key):
    try:
        raw = base64.urlsafe_b64decode(key)
    except (binascii.Error, ValueError, TypeError):
        raw = b""
    if len(raw) != 32:
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEYS entry {number} is not a Fernet key "
            "(32 url-safe base64-encoded bytes)."
        )
    return raw


def _hkdf(raw, info, length):
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(raw)


@functools.cache
def _aead_keys(keys):
    """(key id, AESGCM) per configured key, newest first."""
    derived = []
    for number, key in enumerate(keys, start=1):
        raw = _key_bytes(number, key)
        key_id = base64.urlsafe_b64encode(_hkdf(raw, KEY_ID_INFO, 6)).decode("ascii")
        derived.append((key_id, AESGCM(_hkdf(raw, AES_INFO, 32))))
    return tuple(derived)


@functools.cache
def _multifernet(keys):
    for number, key in enumerate(keys, start=1):
        _key_bytes(number, key)
    return MultiFernet([Fernet(key) for key in keys])


def _associated_data(key_id, binding):
    return f"{FORMAT}:{key_id}:{binding}".encode()


def _require_row(binding):
    if not isinstance(binding, Binding) or binding.row is None or binding.owner is None:
        raise ValueError("A value is bound to a saved row: save the row before encrypting.")


def encrypt(data: bytes, binding: Binding) -> str:
    """`data` encrypted under the newest key, readable only at `binding`."""
    _require_row(binding)
    key_id, aead = _aead_keys(_configured_keys())[0]
    nonce = os.urandom(NONCE_BYTES)
    sealed = aead.encrypt(nonce, data, _associated_data(key_id, binding))
    payload = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
    return f"{FORMAT}:{key_id}:{payload}"


def decrypt(value: str, binding: Binding) -> bytes:
    """The data of a value stored at `binding`, or DecryptionError. Only bound values
    are read: an unbound (legacy Fernet) value is refused."""
    _require_row(binding)
    if is_legacy(value):
        raise DecryptionError("an unbound value from before binding", binding)
    parts = value.split(":") if isinstance(value, str) else []
    if len(parts) != 3 or parts[0] != FORMAT:
        raise DecryptionError("not an encrypted value", binding)
    _, key_id, payload = parts
    aead = dict(_aead_keys(_configured_keys())).get(key_id)
    if aead is None:
        raise DecryptionError("made with a key not in FIELD_ENCRYPTION_KEYS", binding)
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (binascii.Error, ValueError):
        raise DecryptionError("not an encrypted value", binding) from None
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("not an encrypted value", binding)
    try:
        return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(key_id, binding))
    except InvalidTag:
        raise DecryptionError("changed, or copied from another row", binding) from None


def is_legacy(value) -> bool:
    """A Fernet token, as values were stored before they were bound to their rows."""
    return isinstance(value, str) and value.startswith("gAAAAA")


def is_bound(value) -> bool:
    """A value in the bound format (whether or not it decrypts where it is)."""
    return isinstance(value, str) and value.startswith(f"{FORMAT}:")


def bind_legacy(token: str, binding: Binding) -> str:
    """A legacy Fernet token decrypted with any configured key and encrypted bound to
    `binding` (the data migrations and `rotate`)."""
    try:
        data = _multifernet(_configured_keys()).decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        raise DecryptionError("an unbound value no configured key decrypts", binding) from None
    return encrypt(data, binding)


def unbind(value: str, binding: Binding) -> str:
    """A bound value back as a legacy Fernet token under the newest key: only for
    reversing the data migrations (the code before binding reads only Fernet tokens)."""
    return _multifernet(_configured_keys()).encrypt(decrypt(value, binding)).decode("ascii")


def rotate(value: str, binding: Binding) -> str:
    """The same data encrypted under the newest key, still bound to `binding`. A legacy
    Fernet token is converted to a bound value."""
    if is_legacy(value):
        return bind_legacy(value, binding)
    return encrypt(decrypt(value, binding), binding)


# One-time backup codes are stored as keyed hashes (security.models.BackupCodeDevice).
def normalize_code(token):
    return "".join(ch for ch in str(token).lower() if ch.isalnum())


def backup_code_hash(token):
    return salted_hmac(
        "security.backup-code", normalize_code(token), algorithm="sha256"
    ).hexdigest()


# Keyed hashes are made under SECRET_KEY and checked under it and each of
# SECRET_KEY_FALLBACKS, so that a key rotation does not void what was hashed before it.
def keyed_hashes(key_salt, value, algorithm="sha1"):
    """The HMAC of `value` under SECRET_KEY, then under each fallback key."""
    keys = (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)
    return [
        salted_hmac(key_salt, value, secret=key, algorithm=algorithm).hexdigest() for key in keys
    ]


def keyed_hash_matches(digest, key_salt, value, algorithm="sha1"):
    return any(
        constant_time_compare(digest, candidate)
        for candidate in keyed_hashes(key_salt, value, algorithm)
    )


def backup_code_hashes(token):
    """What a stored hash of `token` may be: made under SECRET_KEY or a fallback key."""
    return keyed_hashes("security.backup-code", normalize_code(token), algorithm="sha256")


class BoundEncryptedColumn:
    """Model mixin for one column encrypted bound to its row: `encrypted_column` names the
    column, `binding_owner` the attribute holding the owner's id (entity or user). A new
    row has no id to bind to, so its value waits until save(), which inserts the row and
    then writes the bound value, in one transaction: no row ever holds an unbound value."""

    encrypted_column = None
    binding_owner = None

    def binding(self):
        """Where the value belongs: this row of its owner."""
        return Binding.of(self, self.encrypted_column, getattr(self, self.binding_owner))

    def set_plain(self, raw):
        if self.pk is None:
            self._pending_plain = bytes(raw)
            setattr(self, self.encrypted_column, "")
        else:
            self.__dict__.pop("_pending_plain", None)
            setattr(self, self.encrypted_column, encrypt(bytes(raw), self.binding()))

    def plain(self):
        """The plain bytes; DecryptionError if the stored value is not this row's (copied
        from another row, changed, or under a key no longer configured)."""
        if "_pending_plain" in self.__dict__:
            return self._pending_plain
        return decrypt(getattr(self, self.encrypted_column), self.binding())

    def save(self, *args, **kwargs):
        if "_pending_plain" not in self.__dict__:
            return super().save(*args, **kwargs)
        using = kwargs.get("using")
        with transaction.atomic(using=using):
            super().save(*args, **kwargs)
            setattr(self, self.encrypted_column, encrypt(self._pending_plain, self.binding()))
            super().save(using=using, update_fields=[self.encrypted_column])
        del self._pending_plain
