"""The Dhan web login frame store: one encrypted file, apart from the database and everything else.

The 703-byte frame (brokers.md §4.3) is a web-session credential, so it is kept in its own file
(FEEDS_SECRETS_DIR, default `<instance>/secrets/`), encrypted with Fernet under FEEDS_SECRET_KEY (else
a key derived from ADMIN_TOKEN), and never returned in full by the API: only its size and when it
was stored. The web process writes it; the feeds process reads it, so both must see the same
directory (same host or a shared volume).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.config import Config
from app.parsing import utc_iso

log = logging.getLogger(__name__)

#: Size of the Dhan web login frame (struct `bh30s50s500s50s50s10s10s`, brokers.md §4.3).
LOGIN_FRAME_SIZE = 703
#: First byte of the frame: 41 in the reverse-engineered client (brokers.md §4.3), 42 in the 2025 browser
#: capture of seed 003. Both are accepted; anything else is not a login frame.
LOGIN_FRAME_CODES = (41, 42)
FRAME_FILE = "dhan_web_login_frame.bin"
KEY_VARIABLE = "FEEDS_SECRET_KEY"


def derived_key(secret: str) -> str:
    """A Fernet key derived (HKDF-SHA256, its own label) from another secret of the environment."""
    material = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"orderhook dhan-web login frame")
    return base64.urlsafe_b64encode(material.derive(secret.encode())).decode()


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """Say it once per process, not at every read of the frame."""
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


class SecretKeyUnavailable(Exception):
    """No usable FEEDS_SECRET_KEY: the frame can be neither stored nor read (the API answers 503)."""


class StoredFrameUnreadable(Exception):
    """A stored frame exists but does not decrypt under the configured key (rotated or wrong key)."""


@dataclass(frozen=True)
class StoredFrameInfo:
    """What may be shown about a stored frame: never its bytes."""

    size: int
    stored_at: str

    def to_dict(self) -> dict[str, int | str]:
        """The API answer."""
        return {"size": self.size, "stored_at": self.stored_at}


def decode_login_frame(body: bytes | str) -> bytes:
    """The frame from the base64 text the user sends; ValueError says what is wrong with it."""
    text = body.decode("ascii", errors="replace") if isinstance(body, bytes) else body
    text = "".join(text.split())
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]  # a JSON string is the same base64 text, quoted
    if not text:
        raise ValueError("body is empty: send the base64 text of the 703-byte Dhan web login frame")
    try:
        altchars = b"-_" if ("-" in text or "_" in text) else None
        frame = base64.b64decode(text.encode("ascii", errors="strict"), altchars=altchars, validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError("body is not base64 text: send the login frame's bytes base64-encoded") from None
    check_login_frame(frame)
    return frame


def check_login_frame(frame: bytes) -> None:
    """Refuse anything that cannot be a Dhan web login frame (size, then message code)."""
    if len(frame) != LOGIN_FRAME_SIZE:
        raise ValueError(
            f"the frame decodes to {len(frame)} bytes; a Dhan web login frame is exactly {LOGIN_FRAME_SIZE} bytes "
            "(the first binary message the browser sends to wss://order-feed.dhan.co)"
        )
    if frame[0] not in LOGIN_FRAME_CODES:
        raise ValueError(
            f"the frame starts with byte {frame[0]}; a Dhan web login frame starts with message code "
            f"{' or '.join(str(c) for c in LOGIN_FRAME_CODES)}"
        )


class DhanWebFrameStore:
    """Encrypted at rest, written atomically, readable only by this service's processes."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.directory = Path(config.get("FEEDS_SECRETS_DIR") or config.instance_path / "secrets")
        self.path = self.directory / FRAME_FILE

    # Public API:

    def store(self, frame: bytes) -> StoredFrameInfo:
        """Encrypt and replace the stored frame; the feeds process notices the new file and reconnects."""
        check_login_frame(frame)
        token = self._fernet().encrypt(frame)
        self._write_private(token)
        return self._info_from_token(token, len(frame))

    def load(self) -> bytes | None:
        """The decrypted frame, or None when none is stored."""
        token = self._read()
        if token is None:
            return None
        try:
            return self._fernet().decrypt(token)
        except InvalidToken:
            raise StoredFrameUnreadable(
                f"the stored Dhan web login frame does not decrypt with {KEY_VARIABLE} "
                "(was the key changed?); store the frame again"
            ) from None

    def info(self) -> StoredFrameInfo | None:
        """Size and time of the stored frame (decrypts to prove the key still opens it), or None."""
        token = self._read()
        if token is None:
            return None
        frame = self.load()
        return self._info_from_token(token, len(frame or b""))

    def version(self) -> tuple[int, int, int] | None:
        """A cheap fingerprint of the stored file (no key needed), so a reader can poll for a new frame."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def exists(self) -> bool:
        """True when a frame is stored."""
        return self.path.is_file()

    # Internals:

    def _fernet(self) -> MultiFernet:
        """FEEDS_SECRET_KEY (comma-separated for rotation: the first encrypts), else one derived from ADMIN_TOKEN."""
        keys = [k.strip() for k in self.config.get(KEY_VARIABLE).split(",") if k.strip()]
        if not keys and self.config.admin_token:
            keys = [derived_key(self.config.admin_token)]
            _warn_once(
                f"{KEY_VARIABLE} is not set: the Dhan web login frame is encrypted with a key derived from "
                f"ADMIN_TOKEN (changing ADMIN_TOKEN means storing the frame again); set {KEY_VARIABLE} to decouple"
            )
        if not keys:
            raise SecretKeyUnavailable(
                f"{KEY_VARIABLE} is not set (nor ADMIN_TOKEN): set it to a Fernet key (python -c 'from "
                "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())') to store the frame"
            )
        try:
            return MultiFernet([Fernet(k) for k in keys])
        except (ValueError, binascii.Error):
            raise SecretKeyUnavailable(
                f"{KEY_VARIABLE} is not a valid Fernet key (32 url-safe base64-encoded bytes; generate one with "
                "Fernet.generate_key())"
            ) from None

    def _read(self) -> bytes | None:
        """The encrypted token on disk, or None."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def _write_private(self, data: bytes) -> None:
        """Owner-only file in an owner-only directory, replaced atomically (readers never see half a file)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".frame-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _info_from_token(self, token: bytes, size: int) -> StoredFrameInfo:
        """stored_at is the encryption time sealed inside the Fernet token."""
        seconds = self._fernet().extract_timestamp(token)
        return StoredFrameInfo(size=size, stored_at=utc_iso(datetime.fromtimestamp(seconds, tz=UTC)))
