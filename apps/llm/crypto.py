"""Provider API keys at rest: Fernet-encrypted in the database, or read from a named environment variable.

The key that encrypts them is `settings.PORTAL_ENCRYPTION_KEY`: a Fernet key (32 url-safe base64 bytes) or any
passphrase (stretched with HKDF-SHA256). Give several, comma-separated, to rotate: the first encrypts, all
decrypt. Unset, a key is derived from SECRET_KEY with HKDF; it stays accepted for decryption after
PORTAL_ENCRYPTION_KEY is introduced, so existing rows keep working until they are re-saved.

Plaintext keys live only inside a `Secret`, whose repr and str are masked, so a key never reaches a log line,
a traceback's locals summary, a template or an audit diff by accident.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from apps.llm.errors import AuthenticationFailed

_HKDF_SALT = b"genai-portal/provider-secrets/v1"
_HKDF_INFO = b"fernet-key"


class Secret:
    """A plaintext secret that will not print itself. `reveal()` is the one way out."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self):  # never pickled into a Celery message or a cache
        raise TypeError("A Secret cannot be pickled.")


def _derive(material: str) -> bytes:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO).derive(material.encode())
    return base64.urlsafe_b64encode(key)


def _as_fernet_key(value: str) -> bytes:
    """A ready Fernet key is used as is; anything else is a passphrase, stretched with HKDF."""
    try:
        if len(base64.urlsafe_b64decode(value.encode())) == 32:
            return value.encode()
    except (binascii.Error, ValueError):
        pass
    return _derive(value)


def _fernet() -> MultiFernet:
    configured = [part.strip() for part in (getattr(settings, "PORTAL_ENCRYPTION_KEY", None) or "").split(",")]
    keys = [_as_fernet_key(part) for part in configured if part]
    keys.append(_derive(settings.SECRET_KEY))  # the default, and the fallback for rows written before
    return MultiFernet([Fernet(key) for key in keys])


def encrypt_secret(plaintext: str) -> str:
    if not plaintext:
        raise ValueError("Nothing to encrypt.")
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt_secret(token: str) -> Secret:
    """Decrypt a value of encrypt_secret (any secret: provider keys, webhook secrets…)."""
    try:
        return Secret(_fernet().decrypt(token.encode()).decode())
    except (InvalidToken, ValueError):
        raise AuthenticationFailed(
            "A stored secret cannot be decrypted: PORTAL_ENCRYPTION_KEY or SECRET_KEY changed since it was "
            "saved. Set it again."
        )


def provider_api_key(provider) -> Secret | None:
    """The provider's key: from its environment variable if it names one, else the encrypted column."""
    if provider.api_key_env:
        value = os.environ.get(provider.api_key_env, "")
        if not value:
            raise AuthenticationFailed(
                f"Provider {provider.name} reads its API key from ${provider.api_key_env}, "
                "which is not set on this server."
            )
        return Secret(value)
    if provider.api_key_encrypted:
        try:
            return decrypt_secret(provider.api_key_encrypted)
        except AuthenticationFailed:
            raise AuthenticationFailed(
                f"The stored API key of provider {provider.name} cannot be decrypted: PORTAL_ENCRYPTION_KEY or "
                "SECRET_KEY changed since it was saved. Set the key again on the Models page."
            )
    return None
