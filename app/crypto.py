"""The service's encryption at rest: Fernet under FEEDS_SECRET_KEY, else a key derived from ADMIN_TOKEN.

Used by the Dhan web login frame store (app/secrets_store.py) and the accounts' credentials and sessions
(app/accounts/store.py); each purpose derives its own key from ADMIN_TOKEN (HKDF with its own label), while an
explicit FEEDS_SECRET_KEY (comma-separated for rotation: the first encrypts) serves them all. docs/deploy.md.
"""

from __future__ import annotations

import base64
import binascii
import logging

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.config import Config

log = logging.getLogger(__name__)

KEY_VARIABLE = "FEEDS_SECRET_KEY"


class SecretKeyUnavailable(Exception):
    """No usable FEEDS_SECRET_KEY: nothing can be encrypted or read (the API answers 503)."""


def derived_key(secret: str, label: str) -> str:
    """A Fernet key derived (HKDF-SHA256 with `label`) from another secret of the environment."""
    material = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label.encode())
    return base64.urlsafe_b64encode(material.derive(secret.encode())).decode()


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """Say it once per process, not at every read."""
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def fernet_for(config: Config, label: str, what: str) -> MultiFernet:
    """The keys that encrypt `what` (named in messages): FEEDS_SECRET_KEY, else one derived from ADMIN_TOKEN."""
    keys = [k.strip() for k in config.feed_settings.secret_key.split(",") if k.strip()]
    if not keys and config.admin_token:
        keys = [derived_key(config.admin_token, label)]
        _warn_once(
            f"{KEY_VARIABLE} is not set, so a key derived from ADMIN_TOKEN encrypts {what} (a changed "
            f"ADMIN_TOKEN cannot decrypt what was stored before: store it again); set {KEY_VARIABLE} to decouple"
        )
    if not keys:
        raise SecretKeyUnavailable(
            f"{KEY_VARIABLE} is not set (nor ADMIN_TOKEN): set it to a Fernet key (python -c 'from "
            f"cryptography.fernet import Fernet; print(Fernet.generate_key().decode())') to store {what}"
        )
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except (ValueError, binascii.Error):
        raise SecretKeyUnavailable(
            f"{KEY_VARIABLE} is not a valid Fernet key (32 url-safe base64-encoded bytes; generate one with "
            "Fernet.generate_key())"
        ) from None
