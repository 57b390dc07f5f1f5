"""Encryption of secrets at rest (router passwords, Daraja keys and passkeys).

Keys come from ISPOPS_ENCRYPTION_KEY: comma-separated Fernet keys, the first one
encrypts and every one decrypts, so a key is rotated by putting the new one first and
re-saving the rows. In development (ISPOPS_DEBUG=1, the default) a missing key is
generated once into var/encryption.key; with ISPOPS_DEBUG=0 settings.py refuses to
load without one.
"""

import functools
import os

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


class DecryptionError(ValueError):
    """The stored value was not encrypted with any configured key."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


def keys_in_use() -> list[str]:
    """The keys this process encrypts and decrypts with, the encrypting one first."""
    return list(settings.ENCRYPTION_KEYS) or [_development_key()]


@functools.cache
def _fernet() -> MultiFernet:
    keys = keys_in_use()
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError:
        raise ImproperlyConfigured(
            "ISPOPS_ENCRYPTION_KEY must be Fernet keys (32 url-safe base64 bytes); "
            "make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        ) from None


def _development_key() -> str:
    # settings.py refuses to load without ISPOPS_ENCRYPTION_KEY when ISPOPS_DEBUG=0, so
    # only development (and its tests) get here.
    path = settings.ENCRYPTION_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting at once must not write two different keys.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(generate_key())
    return path.read_text().strip()


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError("secret cannot be decrypted with the configured keys") from None


def mask(secret: str, visible: int = 2) -> str:
    """What a page may show of a secret after entry: its length hidden, a hint kept."""
    if not secret:
        return ""
    return "•" * 8 + secret[-visible:] if len(secret) > visible * 3 else "•" * 8


class EncryptedTextField(models.TextField):
    """A text column stored encrypted; the model attribute holds the plaintext.

    Never rendered in forms with its value (use a PasswordInput(render_value=False)),
    and registered as `secret` with the audit log so history shows "(changed)" only.
    """

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)
