"""Consumers' signing secrets: Standard Webhooks `whsec_` keys, encrypted at rest with the service's Fernet.

A secret is `whsec_` + the base64 of 32 random bytes (the Standard Webhooks spec's format, as FORWARD_SECRET;
docs/delivery.md). It is shown once, when it is made or rotated; the database holds only its Fernet token
(app/crypto.py, with its own HKDF label when derived from ADMIN_TOKEN), and no view or log line holds it.
"""

from __future__ import annotations

import base64
import secrets as random

from cryptography.fernet import InvalidToken, MultiFernet

from app.config import Config
from app.crypto import fernet_for

#: The HKDF label of the consumers' key when it is derived from ADMIN_TOKEN (app/crypto.py).
KEY_LABEL = "orderhook consumers"
PREFIX = "whsec_"
KEY_BYTES = 32
#: How long deliveries are signed under the previous secret too after a rotation.
ROTATION_HOURS = 24


class SecretUnreadable(Exception):
    """A stored secret does not decrypt with the configured key (FEEDS_SECRET_KEY changed?)."""


def new_secret() -> str:
    """A fresh whsec_ key."""
    return PREFIX + base64.b64encode(random.token_bytes(KEY_BYTES)).decode()


def cipher(config: Config) -> MultiFernet:
    """The Fernet keys that encrypt consumers' secrets."""
    return fernet_for(config, KEY_LABEL, "consumers' signing secrets")


def encrypt(config: Config, secret: str) -> bytes:
    """The stored form of a secret."""
    return cipher(config).encrypt(secret.encode())


def decrypt(config: Config, token: bytes | None) -> str | None:
    """The clear secret, or None when none is stored; SecretUnreadable when it does not decrypt."""
    if not token:
        return None
    try:
        return cipher(config).decrypt(bytes(token)).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "a consumer's stored secret does not decrypt with FEEDS_SECRET_KEY (was the key changed?); "
            "rotate that consumer's secret"
        ) from None
