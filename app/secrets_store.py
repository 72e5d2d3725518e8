"""The Dhan web login frame store: encrypted, in its own database table, apart from everything else.

The 703-byte frame (docs/brokers.md §4.3) is a web-session credential. It is encrypted with Fernet under
FEEDS_SECRET_KEY (else a key derived from ADMIN_TOKEN) and kept in its own table, `feed_secrets`
(migration 0005), which nothing else reads, joins or prunes; the API never returns it in full, only
its size and when it was stored. The web process writes it and the feeds process reads it through
DATABASE_URL, so they may run on machines that share no disk (Heroku dynos). See docs/deploy.md.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from cryptography.fernet import InvalidToken, MultiFernet

from app.config import Config
from app.crypto import KEY_VARIABLE, fernet_for
from app.crypto import derived_key as crypto_derived_key
from app.db import make_engine
from app.times import utc_iso

log = logging.getLogger(__name__)

#: Size of the Dhan web login frame (struct `bh30s50s500s50s50s10s10s`, docs/brokers.md §4.3).
LOGIN_FRAME_SIZE = 703
#: First byte of the frame: 41 in the reverse-engineered client (docs/brokers.md §4.3), 42 in the 2025 browser
#: capture of seed 003. Both are accepted; anything else is not a login frame.
LOGIN_FRAME_CODES = (41, 42)
FRAME_NAME = "dhan_web_login_frame"

#: Its own metadata: this table is not part of app.db's schema that the rest of the service uses.
secrets_metadata = sa.MetaData()

#: Encrypted feed credentials, one row per secret (only the Dhan web login frame today).
feed_secrets = sa.Table(
    "feed_secrets",
    secrets_metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("token", sa.LargeBinary, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
)

_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


def _engine_for(url: str) -> sa.Engine:
    """One engine per database URL and process (the feeds process polls the store every few seconds)."""
    with _engines_lock:
        if url not in _engines:
            _engines[url] = make_engine(url)
        return _engines[url]


#: The HKDF label of the frame's key derived from ADMIN_TOKEN (unchanged since frames were first stored).
FRAME_KEY_LABEL = "orderhook dhan-web login frame"


def derived_key(secret: str) -> str:
    """The frame's Fernet key derived from another secret of the environment."""
    return crypto_derived_key(secret, FRAME_KEY_LABEL)


class StoredFrameUnreadable(Exception):
    """A stored frame exists but does not decrypt under the configured key (rotated or wrong key)."""


class FrameStoreUnavailable(StoredFrameUnreadable):
    """The database holding the frame does not answer (the API says 503; the feed waits and retries)."""


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
    if text.isascii() and len(text) % 4 in (2, 3):
        text += "=" * (-len(text) % 4)  # unpadded base64: the padding is implied by the length
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
    """Encrypted at rest in its own table, replaced atomically, readable by this service's processes anywhere."""

    def __init__(self, config: Config, engine: sa.Engine | None = None) -> None:
        self.config = config
        self.engine = engine or _engine_for(config.database_url)

    # Public API:

    def store(self, frame: bytes) -> StoredFrameInfo:
        """Encrypt and replace the stored frame; the feeds process notices the new revision and reconnects."""
        check_login_frame(frame)
        token = self._fernet().encrypt(frame)
        self._write(token)
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
        """A cheap fingerprint (revision, stored time, size; no key needed) so a reader can poll for a new frame."""
        query = sa.select(
            feed_secrets.c.revision, feed_secrets.c.stored_at, sa.func.length(feed_secrets.c.token)
        ).where(feed_secrets.c.name == FRAME_NAME)
        try:
            with self.engine.connect() as conn:
                row = conn.execute(query).first()
        except sa.exc.SQLAlchemyError as exc:
            log.debug("login frame store not answering: %s", type(exc).__name__)
            return None
        if row is None:
            return None
        return (row[0], int(row[1].timestamp() * 1_000_000), row[2])

    def exists(self) -> bool:
        """True when a frame is stored."""
        with self.engine.connect() as conn:
            return (
                conn.execute(sa.select(feed_secrets.c.name).where(feed_secrets.c.name == FRAME_NAME)).first()
                is not None
            )

    def _fernet(self) -> MultiFernet:
        """FEEDS_SECRET_KEY, else the key derived from ADMIN_TOKEN (app/crypto.py)."""
        return fernet_for(self.config, FRAME_KEY_LABEL, "the Dhan web login frame")

    def _read(self) -> bytes | None:
        """The encrypted token, or None."""
        try:
            with self.engine.connect() as conn:
                token = conn.execute(
                    sa.select(feed_secrets.c.token).where(feed_secrets.c.name == FRAME_NAME)
                ).scalar_one_or_none()
        except sa.exc.SQLAlchemyError as exc:
            raise FrameStoreUnavailable(
                f"the database holding the Dhan web login frame is not answering ({type(exc).__name__}); "
                "retry shortly (and check that migrations ran: `python -m app.cli db-upgrade`)"
            ) from None
        return None if token is None else bytes(token)

    def _write(self, token: bytes) -> None:
        """Insert or replace the one row in a transaction (readers see the old token or the new, never half)."""
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            current = conn.execute(
                sa.select(feed_secrets.c.revision).where(feed_secrets.c.name == FRAME_NAME)
            ).scalar_one_or_none()
            if current is None:
                conn.execute(feed_secrets.insert().values(name=FRAME_NAME, token=token, revision=1, stored_at=now))
            else:
                conn.execute(
                    feed_secrets.update()
                    .where(feed_secrets.c.name == FRAME_NAME)
                    .values(token=token, revision=feed_secrets.c.revision + 1, stored_at=now)
                )

    def _info_from_token(self, token: bytes, size: int) -> StoredFrameInfo:
        """stored_at is the encryption time sealed inside the Fernet token."""
        seconds = self._fernet().extract_timestamp(token)
        return StoredFrameInfo(size=size, stored_at=utc_iso(datetime.fromtimestamp(seconds, tz=UTC)))
